"""Deterministic sample data for the demo's three back-office systems.

Sales (a SQLite file), accounting (balances) and credit (terms) all describe the same ~50 customers.
Everything comes from `random.Random(7)` and a fixed anchor date, so every build is identical.

    +14155550100   exactly one customer: Dana Whitfield, Whitfield Hardware (C1001)
    +14155550111   two customers: Marcus and Elena Reyes, Reyes Landscaping (C1002, C1003)
    +14155550199   nobody (the unknown caller)

Phone numbers are in ranges kept for fiction (US 555-01xx, Ofcom's drama numbers) or, for Germany,
made-up numbers that `phonenumbers` accepts; e-mail domains end in the reserved `.example`.
"""

from __future__ import annotations

import functools
import os
import random
import re
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from screenpop.demo.baskets import Catalog, Item, Style, shop

SEED = 7
ANCHOR = date(2026, 11, 1)  # "today" for the sample data
KNOWN_NUMBER = "+14155550100"
UNKNOWN_NUMBER = "+14155550199"
SEVERAL_NUMBER = "+14155550111"

CURRENCY = {"US": "USD", "GB": "GBP", "DE": "EUR"}
_RATE = {"USD": 1.0, "GBP": 0.79, "EUR": 0.92}  # list prices are in USD

_US_AREAS = {"415": "San Francisco", "212": "New York", "312": "Chicago", "617": "Boston",
             "206": "Seattle", "512": "Austin", "303": "Denver"}
_UK_AREAS = {"2079460": "London", "1614960": "Manchester", "1214960": "Birmingham", "1134960": "Leeds",
             "1414960": "Glasgow", "1174960": "Bristol"}  # the prefix before the last 3 digits
_DE_AREAS = {"30": ("Berlin", 8), "89": ("München", 8), "40": ("Hamburg", 8), "221": ("Köln", 7),
             "69": ("Frankfurt am Main", 8)}  # area code: (city, subscriber digits)

_NAMES = {
    "US": (["James", "Olivia", "Michael", "Sophia", "Daniel", "Emily", "Robert", "Grace", "Anthony", "Chloe",
            "Kevin", "Natalie", "Brian", "Megan", "Jason", "Lauren", "Carlos", "Aisha", "Wei", "Priya"],
           ["Carter", "Nguyen", "Patel", "Brooks", "Sullivan", "Kim", "Foster", "Ramirez", "Hughes", "Bennett",
            "Coleman", "Diaz", "Price", "Morales", "Jenkins", "Russell", "Ortiz", "Hayes", "Graham", "Tran",
            "Walker", "Bishop", "Okafor", "Lindqvist", "Castillo", "Park", "Holloway", "Mendoza"]),
    "GB": (["Oliver", "Amelia", "Harry", "Isla", "George", "Poppy", "Jack", "Freya", "Alfie", "Imogen",
            "Callum", "Niamh"],
           ["Thornton", "Ashworth", "Pemberton", "Halliwell", "Whitaker", "Fairbairn", "Lloyd", "Davies",
            "Clarke", "Ellis", "Murray", "Baxter"]),
    "DE": (["Jonas", "Lena", "Lukas", "Anna", "Felix", "Marie", "Maximilian", "Sophie", "Tobias",
            "Katharina", "Jan", "Julia"],
           ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Becker", "Hoffmann", "Schäfer", "Koch",
            "Richter", "Wolf", "Schröder"]),
}
_COMPANIES = {
    "US": ["{last} Hardware", "{last} Construction LLC", "{last} Home Supply", "{last} & Sons Contracting",
           "{city} Renovations Inc.", "{last} Plumbing & Heating", "{last} Electric Co.", "{last} Builders"],
    "GB": ["{last} & Sons Ltd", "{last} Joinery Ltd", "{city} Building Supplies Ltd",
           "{last} Property Maintenance", "{last} Electrical Ltd"],
    "DE": ["{last} Bau GmbH", "{last} Haustechnik GmbH", "{last} & Partner GmbH", "Malerbetrieb {last}",
           "Elektro {last} GmbH"],
}
_COUNTS = {"US": 27, "GB": 10, "DE": 10}  # besides the three special customers: 50 in all

_PRODUCTS = [
    ("TL-1001", "Cordless Drill 18V", "Tools", 129.00), ("TL-1002", "Impact Driver 18V", "Tools", 149.00),
    ("TL-1003", "Circular Saw 185 mm", "Tools", 119.00), ("TL-1004", "Cross-Line Laser Level", "Tools", 89.50),
    ("TL-1005", "Claw Hammer 16 oz", "Tools", 24.90),
    ("FS-2001", "Wood Screws 4x40 mm, box of 500", "Fasteners", 18.40),
    ("FS-2002", "Drywall Screws, box of 1000", "Fasteners", 21.75),
    ("FS-2003", "Anchor Bolts M10, pack of 50", "Fasteners", 32.00),
    ("PT-3001", "Interior Paint White 10 L", "Paint", 64.00), ("PT-3002", "Exterior Primer 5 L", "Paint", 48.50),
    ("PT-3003", "Paint Roller Kit", "Paint", 15.90), ("EL-4001", "LED Panel 60x60 40W", "Electrical", 42.00),
    ("EL-4002", "Copper Cable 3-core, 50 m", "Electrical", 56.80),
    ("EL-4003", "Smart Light Switch", "Electrical", 34.90), ("PL-5001", "PEX Pipe 16 mm, 100 m", "Plumbing", 78.00),
    ("PL-5002", "Ball Valve 3/4 in", "Plumbing", 12.60), ("PL-5003", "Kitchen Faucet Chrome", "Plumbing", 139.00),
    ("GD-6001", "Garden Hose 25 m", "Garden", 39.90), ("GD-6002", "Bypass Pruning Shears", "Garden", 27.50),
    ("SF-7001", "Safety Glasses, pack of 10", "Safety", 29.00),
]


@dataclass(frozen=True)
class DemoCustomer:
    """One customer of the sample company."""

    id: str
    name: str
    company: str
    phone: str  # E.164
    email: str
    city: str
    country: str  # US | GB | DE
    created_at: str  # ISO date

    @property
    def currency(self) -> str:
        return CURRENCY[self.country]


# How the demo's customers buy (screenpop.demo.baskets): consumables reordered on a cycle, durables bought
# once, and what goes with what.
_DURABLES = {"TL-1001", "TL-1002", "TL-1003", "TL-1004", "TL-1005", "PL-5003", "GD-6002", "EL-4003"}
_COMPLEMENTS = {
    "TL-1001": ("FS-2001", "FS-2003"), "TL-1002": ("FS-2002",), "TL-1003": ("SF-7001",), "TL-1004": ("FS-2003",),
    "PT-3001": ("PT-3003",), "PT-3002": ("PT-3001", "PT-3003"), "EL-4001": ("EL-4002", "EL-4003"),
    "PL-5001": ("PL-5002",), "PL-5003": ("PL-5002",), "GD-6001": ("GD-6002",),
}
_OUT_OF_STOCK = {"EL-4003"}  # the catalog lacks it today: never offered
_STYLE = Style(orders=(0, 12), staples=(1, 3), cycle_days=(14, 45), keep_staple=0.8, new_items=(0, 2),
               complement_share=0.6, switch=0.0, max_lines=4)


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    category: str
    price: float  # list price in USD

    @property
    def durable(self) -> bool:
        return self.sku in _DURABLES

    @property
    def in_stock(self) -> bool:
        return self.sku not in _OUT_OF_STOCK


def buying_catalog(products: list[Product]) -> Catalog:
    """The demo's products as the order generator sees them (durables, complements, popularity)."""
    return Catalog(tuple(Item(p.sku, durable=p.durable, weight=2.0 if p.category == "Fasteners" else 1.0,
                              complements=_COMPLEMENTS.get(p.sku, ())) for p in products))


@dataclass(frozen=True)
class OrderLine:
    sku: str
    qty: int
    unit_price: float


@dataclass(frozen=True)
class Order:
    id: str
    customer_id: str
    ordered_at: str  # ISO date and time, no zone
    total: float
    currency: str
    lines: tuple[OrderLine, ...]


@dataclass(frozen=True)
class SampleData:
    customers: tuple[DemoCustomer, ...]
    products: tuple[Product, ...]
    orders: tuple[Order, ...]


_ASCII = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "&": "and"})


def _email(first: str, last: str, company: str) -> str:
    slug = re.sub(r"\b(LLC|Inc|Ltd|GmbH|Co)\b\.?", "", company.translate(_ASCII)).lower()
    user = ".".join(re.sub(r"[^a-z]+", "", s.translate(_ASCII).lower()) for s in (first, last))
    return f"{user}@{re.sub(r'[^a-z0-9]+', '-', slug).strip('-')}.example"


def _phone(rng: random.Random, country: str, used: set[str]) -> tuple[str, str]:
    """A fresh number of `country` and its city; never one of the special numbers."""
    for _ in range(1000):
        if country == "US":
            area = rng.choice(list(_US_AREAS))
            number, city = f"+1{area}55501{rng.randrange(100):02d}", _US_AREAS[area]
        elif country == "GB":
            prefix = rng.choice(list(_UK_AREAS))
            number, city = f"+44{prefix}{rng.randrange(1000):03d}", _UK_AREAS[prefix]
        else:
            area = rng.choice(list(_DE_AREAS))
            city, digits = _DE_AREAS[area]
            number = f"+49{area}{rng.randint(2, 9)}{rng.randrange(10 ** (digits - 1)):0{digits - 1}d}"
        if number not in used and number not in (KNOWN_NUMBER, UNKNOWN_NUMBER, SEVERAL_NUMBER):
            used.add(number)
            return number, city
    raise RuntimeError(f"no free {country} phone number left")


def _customers(rng: random.Random) -> list[DemoCustomer]:
    def created() -> str:
        return (ANCHOR - timedelta(days=rng.randint(600, 3000))).isoformat()

    out = [
        DemoCustomer("C1001", "Dana Whitfield", "Whitfield Hardware", KNOWN_NUMBER,
                     "dana.whitfield@whitfield-hardware.example", "San Francisco", "US", created()),
        DemoCustomer("C1002", "Marcus Reyes", "Reyes Landscaping", SEVERAL_NUMBER,
                     "marcus.reyes@reyes-landscaping.example", "San Francisco", "US", created()),
        DemoCustomer("C1003", "Elena Reyes", "Reyes Landscaping", SEVERAL_NUMBER,
                     "elena.reyes@reyes-landscaping.example", "San Francisco", "US", created()),
    ]
    used_phones: set[str] = set()
    for country, count in _COUNTS.items():
        firsts, lasts = _NAMES[country]
        for last in rng.sample(lasts, count):  # one customer per family name and country
            first = rng.choice(firsts)
            phone, city = _phone(rng, country, used_phones)
            company = rng.choice(_COMPANIES[country]).format(last=last, city=city)
            email = _email(first, last, company)
            out.append(DemoCustomer(f"C{1001 + len(out)}", f"{first} {last}", company, phone, email, city, country,
                                    created()))
    return out


def _orders(rng: random.Random, customers: list[DemoCustomer], products: list[Product]) -> list[Order]:
    by_sku = {p.sku: p for p in products}
    star = next(c.id for c in customers if c.phone == KNOWN_NUMBER)
    bought = shop(buying_catalog(products), [c.id for c in customers], ANCHOR - timedelta(days=547), ANCHOR,
                  _STYLE, seed=rng.randrange(2**32), orders_of={star: (8, ANCHOR - timedelta(days=120))})
    currency = {c.id: c.currency for c in customers}
    drafts: list[tuple[str, str, str, tuple[OrderLine, ...]]] = []
    for cid, _, day, skus in bought:
        at = datetime.combine(day, time(rng.randint(8, 17), rng.randrange(60), rng.randrange(60)))
        lines = tuple(
            OrderLine(sku, rng.randint(1, 12) if by_sku[sku].category == "Fasteners" else rng.randint(1, 5),
                      round(by_sku[sku].price * _RATE[currency[cid]], 2))
            for sku in skus
        )
        drafts.append((at.isoformat(), cid, currency[cid], lines))
    drafts.sort()
    return [
        Order(f"SO-{100001 + i}", cid, at, round(sum(ln.qty * ln.unit_price for ln in lines), 2), cur, lines)
        for i, (at, cid, cur, lines) in enumerate(drafts)
    ]


def generate() -> SampleData:
    """Build the sample data from scratch (the same every time)."""
    rng = random.Random(SEED)
    customers = _customers(rng)
    products = [Product(*p) for p in _PRODUCTS]
    return SampleData(tuple(customers), tuple(products), tuple(_orders(rng, customers, products)))


@functools.cache
def sample_data() -> SampleData:
    """The sample data, built once per process."""
    return generate()


def customer(customer_id: str) -> DemoCustomer | None:
    """The customer with this id, or None."""
    return next((c for c in sample_data().customers if c.id == customer_id), None)


_SCHEMA = """
CREATE TABLE customers (id TEXT PRIMARY KEY, name TEXT NOT NULL, company TEXT, phone TEXT NOT NULL,
                        email TEXT, city TEXT, created_at TEXT NOT NULL);
CREATE INDEX customers_phone ON customers (phone);
CREATE TABLE products (sku TEXT PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL, price REAL NOT NULL,
                       durable INTEGER NOT NULL, in_stock INTEGER NOT NULL);
CREATE TABLE orders (id TEXT PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers (id),
                     ordered_at TEXT NOT NULL, total REAL NOT NULL, currency TEXT NOT NULL);
CREATE INDEX orders_customer ON orders (customer_id, ordered_at);
CREATE TABLE order_lines (order_id TEXT NOT NULL REFERENCES orders (id), sku TEXT NOT NULL REFERENCES products (sku),
                          qty INTEGER NOT NULL, unit_price REAL NOT NULL, PRIMARY KEY (order_id, sku));
"""


def build_sales_db(path: str | Path) -> None:
    """Write the sales database (customers, products, orders, order_lines) to `path`, replacing it."""
    path = Path(path)
    data = sample_data()
    tmp = path.with_name(path.name + ".building")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    try:
        tables: dict[str, list[tuple[Any, ...]]] = {
            "customers": [(c.id, c.name, c.company, c.phone, c.email, c.city, c.created_at) for c in data.customers],
            "products": [(p.sku, p.name, p.category, p.price, int(p.durable), int(p.in_stock)) for p in data.products],
            "orders": [(o.id, o.customer_id, o.ordered_at, o.total, o.currency) for o in data.orders],
            "order_lines": [(o.id, ln.sku, ln.qty, ln.unit_price) for o in data.orders for ln in o.lines],
        }
        with con:
            con.executescript(_SCHEMA)
            for table, rows in tables.items():
                con.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})", rows)
    finally:
        con.close()
    os.replace(tmp, path)


def accounting_facts(customer_id: str) -> dict[str, Any] | None:
    """What accounting knows of the customer (balance, overdue, last payment), or None if unknown."""
    c = customer(customer_id)
    if c is None:
        return None
    if c.phone == KNOWN_NUMBER:
        balance, overdue, paid = 1240.50, 0.0, ANCHOR - timedelta(days=15)
    else:
        rng = random.Random(f"accounting:{customer_id}")
        balance = round(rng.uniform(50, 6000), 2) if rng.random() < 0.85 else 0.0
        overdue = round(balance * rng.choice([0.2, 0.35, 0.5, 1.0]), 2) if balance and rng.random() < 0.2 else 0.0
        paid = ANCHOR - timedelta(days=rng.randint(60, 150) if overdue else rng.randint(2, 45))
    return {"customer_id": c.id, "balance": balance, "currency": c.currency, "overdue": overdue,
            "last_payment": paid.isoformat()}


_HOLD_REASONS = ["Invoices overdue more than 60 days", "Returned payment under review", "Credit review pending"]


def credit_facts(customer_id: str) -> dict[str, Any] | None:
    """The credit terms the agent may offer the customer, or None if unknown."""
    c, acct = customer(customer_id), accounting_facts(customer_id)
    if c is None or acct is None:
        return None
    if c.phone == KNOWN_NUMBER:
        terms, limit, hold, reason = "Net 30", 15000.0, False, None
    else:
        rng = random.Random(f"credit:{customer_id}")
        roll = rng.random()
        terms = "Prepaid" if roll < 0.12 else "Net 60" if roll < 0.35 else "Net 30"
        limit = {"Prepaid": 0.0, "Net 30": float(rng.randrange(5000, 25001, 500)),
                 "Net 60": float(rng.randrange(20000, 60001, 1000))}[terms]
        reason = None
        if acct["overdue"] and rng.random() < 0.7:
            reason = _HOLD_REASONS[0]
        elif rng.random() < 0.06:
            reason = rng.choice(_HOLD_REASONS[1:])
        hold = reason is not None
    available = 0.0 if hold else round(max(0.0, limit - acct["balance"]), 2)
    return {"customer_id": acct["customer_id"], "terms": terms, "limit": limit, "available": available,
            "currency": acct["currency"], "hold": hold, "hold_reason": reason}
