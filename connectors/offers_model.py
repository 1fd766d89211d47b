"""The offers on the card: two lists with reasons an agent can say out loud. Pure, no I/O.

    again   "likely to order again": products the customer bought before, best first by the engine's
            repeat score (offers_engine), with the reason "usually every 3 weeks, last 24 days ago, due now"
            (or "bought once, 40 days ago") and `due`
    fits    "fits what they bought": products new to the customer, best first by their fit with what they
            bought (offers_neighbours), with the reason "bought by 34 % of customers who bought Cordless
            Drill 18V" (at least `min_customers` of them); filled up with the most popular products
            ("popular: in 6 % of recent orders", the latest tenth of orders, or "of orders" when it
            has none there)

A durable (a product the catalog marks as bought once) is never offered again to a customer who has it.
When a catalog is given, a product it does not list, or lists out of stock, is left out; its price is shown.

`build_model` does all the work once, in a thread (the mix is learnt on the sales themselves, the lists
ranked for every customer at once); `Model.offers_for` reads a few arrays for one customer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse

from connectors.offers_data import Encoder, IntArray, Orders, parse_time
from connectors.offers_engine import DUE_AT, GP_TOPFREQ, Engine, Mix
from connectors.offers_neighbours import spread, top_per_row, top_per_sorted_row
from connectors.offers_tune import tune

LISTS = ("again", "fits")
TUNE_CUSTOMERS = 8000  # the mix is learnt on this many customers' held-out orders at most (build time)


def percent(fraction: float) -> int:
    """A fraction as a whole percentage, halves rounded up (0.345 -> 35)."""
    return int(fraction * 100 + 0.5)


def days_text(days: float) -> str:
    """0 -> "today", 1 -> "yesterday", 24 -> "24 days ago"."""
    n = int(round(days))
    return "today" if n <= 0 else "yesterday" if n == 1 else f"{n} days ago"


def interval_text(days: float) -> str:
    """An interval said out loud: "every 5 days", "every 3 weeks", "every 2 months"."""
    if days < 13.5:
        n, unit = max(1, round(days)), "day"
    elif days < 63:
        n, unit = round(days / 7), "week"
    else:
        n, unit = round(days / 30.4), "month"
    return f"every {unit}" if n == 1 else f"every {n} {unit}s"


@dataclass(frozen=True)
class Catalog:
    """What the company has: price and stock per SKU, and the durables (bought once)."""

    products: dict[str, dict[str, Any]] = field(default_factory=dict)  # sku -> {"price", "currency", "in_stock"}
    durables: frozenset[str] = frozenset()
    complete: bool = False  # True: a SKU the catalog does not list is not available


@dataclass(frozen=True, eq=False)
class Model:
    """Ready lists per customer, and what the model was built from."""

    orders: Orders
    engine: Engine | None
    names: dict[str, str]
    catalog: Catalog
    again: IntArray  # customers x max_offers products, -1 padded
    fits: IntArray
    today: float
    min_customers: int
    uplift_by_target: sparse.csc_matrix
    mix: Mix = GP_TOPFREQ
    index: dict[str, int] = field(default_factory=dict)
    lines: int = 0

    @property
    def customers(self) -> int:
        return self.orders.n_customers

    @property
    def products(self) -> int:
        return self.orders.n_products

    def offers_for(self, customer_id: str) -> list[dict[str, Any]] | None:
        """The customer's two lists as one list of offers (`list`: "again" or "fits"), each best first;
        None when there is nothing to offer (an unknown customer, or nothing available)."""
        u = self.index.get(customer_id)
        e = self.engine
        if u is None or e is None:
            return None
        out = [self._again(e, u, int(i)) for i in self.again[u] if i >= 0]
        out += [self._fits(e, u, int(i)) for i in self.fits[u] if i >= 0]
        return out or None

    def _record(self, i: int, which: str, reason: str, due: bool | None) -> dict[str, Any]:
        sku = self.orders.products[i]
        record: dict[str, Any] = {"list": which, "sku": sku, "name": self.names.get(sku, sku), "reason": reason,
                                  "due": due}
        listed = self.catalog.products.get(sku, {})
        if listed.get("price") is not None:
            record["price"] = listed["price"]
            if listed.get("currency"):
                record["currency"] = listed["currency"]
        return record

    def _again(self, e: Engine, u: int, i: int) -> dict[str, Any]:
        p = int(np.searchsorted(e.pair_key, u * e.n_p + i))
        since = float(math.floor(self.today) - math.floor(float(e.pair_last[p])))  # calendar days
        if e.pair_count[p] < 2:
            return self._record(i, "again", f"bought once, {days_text(since)}", None)
        interval = float(e.interval[p])
        due = since >= DUE_AT * interval
        when = "due now" if since < 2.5 * interval else "overdue"
        if not due:
            left = int(round(interval - since))
            when = "due tomorrow" if left <= 1 else f"due in about {left} days"
        reason = f"usually {interval_text(interval)}, last bought {days_text(since)}, {when}"
        return self._record(i, "again", reason, due)

    def _fits(self, e: Engine, u: int, i: int) -> dict[str, Any]:
        lo, hi = np.searchsorted(e.pair_key, [u * e.n_p, (u + 1) * e.n_p])
        owned = e.pair_product[lo:hi]
        start, end = self.uplift_by_target.indptr[i], self.uplift_by_target.indptr[i + 1]
        sources, gain = self.uplift_by_target.indices[start:end], self.uplift_by_target.data[start:end]
        mine = np.isin(sources, owned)
        if mine.any():
            own = e.own(self.mix.decay, 0.0)[lo:hi][np.searchsorted(owned, sources[mine])]
            j = int(sources[mine][int(np.argmax(gain[mine] * own))])
            name = self.names.get(self.orders.products[j], self.orders.products[j])
            share, base = both_of(e, j, i) / e.buyers[j], e.buyers[i] / max(self.customers, 1)
            return self._record(i, "fits", f"bought by {percent(share)} % of customers who bought {name} "
                                           f"(by {percent(base)} % of all customers)", None)
        share = e.order_share[i] if e.recent_share[i] == 0 else e.recent_share[i]
        when = "orders" if e.recent_share[i] == 0 else "recent orders"
        return self._record(i, "fits", f"popular: in {percent(float(share))} % of {when}", None)


def both_of(e: Engine, j: int, i: int) -> int:
    """How many customers bought j and i, from their stored fit (exact for a stored pair)."""
    fit = float(e.fit_by_target[j, i])
    return round(fit * float(np.sqrt((e.buyers[j] + 1.0) * (e.buyers[i] + 1.0))))


def uplift(e: Engine, min_customers: int) -> sparse.csr_matrix:
    """uplift(j, i) = share of j's buyers who bought i - share of all customers who bought i, over the
    stored neighbour pairs that at least `min_customers` customers bought together (0 kept out)."""
    fit = e.fit.tocoo()
    j, i = fit.row.astype(np.int64), fit.col.astype(np.int64)
    both = np.rint(fit.data * np.sqrt((e.buyers[j] + 1.0) * (e.buyers[i] + 1.0)))
    gain = both / np.maximum(e.buyers[j], 1.0) - e.buyers[i] / max(e.orders.n_customers, 1)
    keep = (both >= min_customers) & (gain > 0)
    return sparse.csr_matrix((gain[keep], (j[keep], i[keep])), shape=e.fit.shape)


def _available(orders: Orders, catalog: Catalog | None) -> np.ndarray:
    """Per product: whether the company has it (no catalog: everything)."""
    if catalog is None:
        return np.ones(orders.n_products, dtype=bool)
    return np.array([(sku in catalog.products and catalog.products[sku].get("in_stock", True) is not False)
                     or (sku not in catalog.products and not catalog.complete) for sku in orders.products],
                    dtype=bool)


class Sales:
    """Order lines (customer_id, order_id, ordered_at, sku, name or None) collected batch by batch."""

    def __init__(self) -> None:
        self.encoder = Encoder()
        self.names: dict[str, str] = {}
        self.lines = 0
        self._times: dict[Any, float] = {}

    def add(self, lines: Iterable[Sequence[Any]]) -> None:
        """Add order lines; a line without a customer, order, time or SKU is skipped. ValueError when a
        time is not a date, a date-time or their ISO text."""
        times, names = self._times, self.names

        def rows() -> Iterable[tuple[Any, Any, float, Any]]:
            for customer, order, when, sku, name in lines:
                self.lines += 1
                if customer is None or order is None or when is None or sku is None:
                    continue
                t = times.get(when)
                if t is None:
                    t = times[when] = parse_time(when)
                if name is not None and str(name):
                    names[str(sku)] = str(name)
                yield customer, order, t, sku

        self.encoder.add(rows())


def build_model(lines: Iterable[Sequence[Any]] | Sales, today: Any, max_offers: int = 3, min_customers: int = 2,
                catalog: Catalog | None = None, learn: bool = True) -> Model:
    """The model from order lines (customer_id, order_id, ordered_at, sku, name or None) of all customers,
    or from `Sales` collected already. `today` (a date, a datetime or ISO text) is when the lists are for.
    `learn`: learn the mix on the sales (else the default mix)."""
    if isinstance(lines, Sales):
        sales = lines
    else:
        sales = Sales()
        sales.add(lines)
    names, count = sales.names, sales.lines
    orders = sales.encoder.orders()
    sales.encoder = Encoder()  # its buffers are not needed any more
    now = parse_time(today)
    catalog = catalog or Catalog()
    empty = np.full((orders.n_customers, max_offers), -1, dtype=np.int64)
    if len(orders.order_time) == 0:
        return Model(orders, None, names, catalog, empty, empty, now, min_customers, sparse.csc_matrix((0, 0)),
                     lines=count)
    mix, found = tune(orders, k=max(10, max_offers), max_customers=TUNE_CUSTOMERS) if learn else (Mix(), {})
    engine = Engine(orders, np.full(orders.n_customers, now))
    engine.use_curve(found.get("curve"))
    durable = np.array([sku in catalog.durables for sku in orders.products], dtype=bool)
    available = _available(orders, catalog)
    again = _again(engine, mix, available & ~durable, max_offers)
    gains = uplift(engine, min_customers)
    fits = _fits(engine, gains, mix, available, max_offers)
    index = {c: u for u, c in enumerate(orders.customers)}
    return Model(orders, engine, names, catalog, again, fits, now, min_customers, gains.tocsc(), mix, index, count)


def _again(e: Engine, mix: Mix, ok: npt.NDArray[np.bool_], n: int) -> IntArray:
    """Each customer's n best products bought before, by the engine's score (customers x n, -1 padded)."""
    p = e.pair_product
    popular = (1.0 - mix.recent) * e.popular[p] + mix.recent * e.recent_popular[p]
    score = (e.own(mix.decay, mix.shrink) * e.again[p] ** mix.item_repeat * e.due ** mix.due
             * e.loyal[e.pair_customer] ** mix.loyalty * e.due_once ** mix.once
             + mix.popularity * popular * (1.0 - e.loyal[e.pair_customer]) ** mix.venture)
    rows = np.flatnonzero(ok[p])
    best = rows[top_per_sorted_row(e.pair_customer[rows], score[rows], n)]
    out = np.full((e.orders.n_customers, n), -1, dtype=np.int64)
    c = e.pair_customer[best]
    out[c, np.arange(len(best)) - np.searchsorted(c, c)] = p[best]
    return out


def _fits(e: Engine, gains: sparse.csr_matrix, mix: Mix, ok: npt.NDArray[np.bool_], n: int) -> IntArray:
    """Each customer's n best new products by uplift from what they bought, filled up with the most
    popular of late (customers x n, -1 where the company has too few)."""
    own = e.own(mix.decay, 0.0)
    profile = sparse.csr_matrix((own, (e.pair_customer, e.pair_product)), shape=(e.orders.n_customers, e.n_p))
    keys, vals = spread(profile, gains, e.pair_key, 4 * n)
    new = ~np.isin(keys, e.pair_key) & ok[keys % e.n_p]
    keys, vals = keys[new], vals[new]
    popular = np.lexsort((-e.popular, -e.recent_popular))
    popular = popular[ok[popular]][:2 * n]
    fill_c = np.repeat(np.arange(e.orders.n_customers), len(popular))
    fill_p = np.tile(popular, e.orders.n_customers)
    fill_keep = ~np.isin(fill_c * e.n_p + fill_p, np.r_[e.pair_key, keys])
    customer = np.r_[keys // e.n_p, fill_c[fill_keep]]
    product = np.r_[keys % e.n_p, fill_p[fill_keep]]
    score = np.r_[vals + 10.0, e.recent_popular[fill_p[fill_keep]] + 1e-3 * e.popular[fill_p[fill_keep]]]
    best = top_per_row(customer, product, score, n)
    out = np.full((e.orders.n_customers, n), -1, dtype=np.int64)
    c = customer[best]
    out[c, np.arange(len(best)) - np.searchsorted(c, c)] = product[best]
    return out
