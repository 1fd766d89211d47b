"""The demo's sample data: deterministic, with the three special numbers exactly as the demo needs them."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import phonenumbers
import pytest
import yaml
from argon2 import PasswordHasher

from screenpop.config import load_config
from screenpop.demo import (
    CUSTOMERS_QUERY,
    DEMO_AGENTS,
    DEMO_PASSWORD,
    PURCHASES_QUERY,
    data,
    demo_config,
    demo_numbers,
)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite3.Connection]:
    """A freshly built sales database."""
    path = tmp_path_factory.mktemp("sales") / "sales.db"
    data.build_sales_db(path)
    con = sqlite3.connect(path)
    con.row_factory = sqlite3.Row
    yield con
    con.close()


def _dump(path: Path) -> list[str]:
    con = sqlite3.connect(path)
    try:
        return list(con.iterdump())
    finally:
        con.close()


def _by_phone(db: sqlite3.Connection, phone: str) -> list[sqlite3.Row]:
    return db.execute(CUSTOMERS_QUERY, {"phone": phone}).fetchall()


def test_two_builds_are_identical(tmp_path: Path) -> None:
    """Generating the data twice, and building the database twice, gives the same result."""
    assert data.generate() == data.generate()
    data.build_sales_db(tmp_path / "a.db")
    data.build_sales_db(tmp_path / "b.db")
    data.build_sales_db(tmp_path / "b.db")  # rebuilding over an existing file replaces it
    assert _dump(tmp_path / "a.db") == _dump(tmp_path / "b.db")
    assert not list(tmp_path.glob("*.building"))


def test_known_number_is_exactly_one_customer_with_history(db: sqlite3.Connection) -> None:
    """+14155550100 is Dana Whitfield alone, with purchases, a balance and credit terms without hold."""
    rows = _by_phone(db, demo_numbers()["known"])
    assert [(r["id"], r["name"], r["company"]) for r in rows] == [("C1001", "Dana Whitfield", "Whitfield Hardware")]
    assert db.execute("SELECT count(*) FROM orders WHERE customer_id = 'C1001'").fetchone()[0] > 0
    acct, credit = data.accounting_facts("C1001"), data.credit_facts("C1001")
    assert acct is not None and acct["balance"] > 0 and acct["currency"] == "USD"
    assert credit is not None and credit["hold"] is False and credit["terms"] in ("Net 30", "Net 60")


def test_unknown_number_matches_nobody(db: sqlite3.Connection) -> None:
    """Nobody has +14155550199, the unknown caller."""
    assert demo_numbers()["unknown"] == "+14155550199"
    assert _by_phone(db, "+14155550199") == []


def test_several_number_matches_exactly_two(db: sqlite3.Connection) -> None:
    """Exactly two customers share +14155550111."""
    assert demo_numbers()["several"] == "+14155550111"
    rows = _by_phone(db, "+14155550111")
    assert [(r["id"], r["name"]) for r in rows] == [("C1002", "Marcus Reyes"), ("C1003", "Elena Reyes")]


def test_every_phone_is_valid_e164_of_its_country() -> None:
    """Every phone number is valid for `phonenumbers`, already in E.164, and matches the customer's country."""
    for c in data.sample_data().customers:
        parsed = phonenumbers.parse(c.phone)
        assert phonenumbers.is_valid_number(parsed), c
        assert phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == c.phone
        assert phonenumbers.region_code_for_number(parsed) == c.country


def test_customers_products_and_orders_have_the_promised_shape() -> None:
    """About 50 customers, 20 products, 0-12 orders each over 18 months, 1-4 lines per order, totals add up."""
    d = data.sample_data()
    ids = [c.id for c in d.customers]
    assert 45 <= len(ids) <= 55 and len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"C\d{4}", i) for i in ids)
    assert all(re.fullmatch(r"[a-z.]+@[a-z0-9-]+\.example", c.email) for c in d.customers)
    assert len(d.products) == 20 and len({p.sku for p in d.products}) == 20
    oldest = datetime.combine(data.ANCHOR - timedelta(days=548), datetime.min.time())
    for c in d.customers:
        assert 0 <= sum(1 for o in d.orders if o.customer_id == c.id) <= 12
    for o in d.orders:
        assert oldest <= datetime.fromisoformat(o.ordered_at) < datetime.combine(data.ANCHOR, datetime.min.time())
        assert 1 <= len(o.lines) <= 4
        assert o.total == pytest.approx(sum(ln.qty * ln.unit_price for ln in o.lines))
        assert o.currency == data.customer(o.customer_id).currency


def test_every_customer_has_accounting_and_credit_facts() -> None:
    """Accounting and credit know every customer id, in the currency of the customer's phone country."""
    for c in data.sample_data().customers:
        acct, credit = data.accounting_facts(c.id), data.credit_facts(c.id)
        assert acct is not None and credit is not None
        assert set(acct) == {"customer_id", "balance", "currency", "overdue", "last_payment"}
        assert set(credit) == {"customer_id", "terms", "limit", "available", "currency", "hold", "hold_reason"}
        assert acct["customer_id"] == credit["customer_id"] == c.id
        assert acct["currency"] == credit["currency"] == {"US": "USD", "GB": "GBP", "DE": "EUR"}[c.country]
        assert 0 <= acct["overdue"] <= acct["balance"]
        assert date.fromisoformat(acct["last_payment"]) < data.ANCHOR
        assert credit["terms"] in ("Net 30", "Net 60", "Prepaid")
        assert 0 <= credit["available"] <= credit["limit"] or credit["terms"] == "Prepaid"
        assert (credit["hold_reason"] is not None) == credit["hold"]
    assert data.accounting_facts("C9999") is None and data.credit_facts("nobody") is None


def test_a_few_customers_are_on_hold_and_most_owe_nothing_overdue() -> None:
    """Some customers (a few, not most) are on credit hold, and most have nothing overdue."""
    customers = data.sample_data().customers
    holds = [c.id for c in customers if data.credit_facts(c.id)["hold"]]
    overdue = [c.id for c in customers if data.accounting_facts(c.id)["overdue"]]
    assert 1 <= len(holds) <= len(customers) // 5
    assert len(overdue) < len(customers) // 2


def test_purchases_query_gives_the_five_latest_lines(db: sqlite3.Connection) -> None:
    """The purchases connector's query returns the customer's five latest order lines, newest first."""
    rows = db.execute(PURCHASES_QUERY, {"customer_id": "C1001"}).fetchall()
    assert len(rows) == 5
    assert list(rows[0].keys()) == ["date", "product", "qty", "total", "currency"]
    dates = [r["date"] for r in rows]
    assert dates == sorted(dates, reverse=True) and all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", d) for d in dates)
    assert all(r["currency"] == "USD" and r["total"] > 0 for r in rows)
    assert db.execute(PURCHASES_QUERY, {"customer_id": "C9999"}).fetchall() == []


def test_demo_config_is_a_valid_config_file(tmp_path: Path) -> None:
    """The generated configuration loads with screenpop.config.load_config, and the demo password works."""
    cfg_path = tmp_path / "config.yaml"
    cfg = demo_config(tmp_path / "sales.db", "http://127.0.0.1:1", "http://127.0.0.1:2")
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    config = load_config(cfg_path)
    assert [a.id for a in config.agents] == list(DEMO_AGENTS) == ["alice", "bob", "admin"]
    assert [(a.extensions, a.role) for a in config.agents] == [(["1001"], "agent"), (["1002"], "agent"), ([], "admin")]
    assert all(PasswordHasher().verify(a.password_hash, DEMO_PASSWORD) for a in config.agents)
    conns = {c.name: c for c in config.connectors}
    assert list(conns) == ["customers", "balance", "purchases", "credit", "offers"]
    assert conns["customers"].role == "identity" and conns["customers"].options["url"].startswith("sqlite:////")
    assert conns["balance"].options["url"] == "http://127.0.0.1:1/api/balance/{customer_id}"
    assert conns["credit"].section_title == "Credit terms" and config.lookup.deadline_ms == 1500
