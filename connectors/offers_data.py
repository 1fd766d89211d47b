"""Order lines as arrays: what the offers engine and its evaluation learn from. Pure, no I/O but reading a CSV.

An `Orders` holds the sales of many customers, encoded once:

    customers[u], products[i]       the ids behind the integer indexes u and i
    order_customer[o], order_time[o]    one entry per order, sorted by customer, then time (days since
                                        1970-01-01, UTC), then the order's first appearance in the input
    line_order[l], line_product[l]  one entry per distinct product of an order (a product twice in one
                                    order is one line), sorted by order

A subset (`Orders.keep`) keeps the same customer and product indexes, so that a model learnt on one subset
scores the customers of another.

`read_orders_csv` reads the evaluation's CSV form: one order line per row with the columns
`customer_id,order_id,ordered_at,product_id` (others ignored, any order, any case), `ordered_at` an ISO date
or date-time; commas, or semicolons or tabs throughout (as some spreadsheets export). A line with an empty
field or a date that is not ISO is skipped and counted (real exports have a few); a file that cannot be read
as order lines at all raises OrdersFileError with one line saying where and what.
"""

from __future__ import annotations

import csv
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

COLUMNS = ("customer_id", "order_id", "ordered_at", "product_id")
DAY_S = 86400.0


class OrdersFileError(ValueError):
    """The order lines cannot be read; the message is one line naming the place and the reason."""


@dataclass(frozen=True, eq=False)
class Orders:
    """The orders of many customers (see the module docstring)."""

    customers: list[str]
    products: list[str]
    order_customer: IntArray
    order_time: FloatArray
    line_order: IntArray
    line_product: IntArray

    @property
    def line_customer(self) -> IntArray:
        """The customer of each line."""
        return self.order_customer[self.line_order]

    @property
    def n_customers(self) -> int:
        return len(self.customers)

    @property
    def n_products(self) -> int:
        return len(self.products)

    def order_start(self) -> IntArray:
        """Index of each customer's first order (orders are sorted by customer); length n_customers + 1."""
        return np.searchsorted(self.order_customer, np.arange(self.n_customers + 1)).astype(np.int64)

    def keep(self, order_mask: npt.NDArray[np.bool_]) -> Orders:
        """The orders where `order_mask` is true and their lines; the same customer and product indexes."""
        new_index = np.cumsum(order_mask) - 1
        line_mask = order_mask[self.line_order]
        return Orders(self.customers, self.products, self.order_customer[order_mask], self.order_time[order_mask],
                      new_index[self.line_order[line_mask]].astype(np.int64), self.line_product[line_mask])


class Encoder:
    """Order lines in, `Orders` out: ids become integers as the lines come, so a big sales table is never
    held in memory as rows (feed it batch by batch with `add`)."""

    def __init__(self) -> None:
        self.customers: dict[str, int] = {}
        self.products: dict[str, int] = {}
        self._orders: dict[tuple[int, str], int] = {}
        self._o_cust = array("q")
        self._o_time = array("d")
        self._l_order = array("q")
        self._l_prod = array("q")

    def add(self, lines: Iterable[tuple[Any, Any, float, Any]]) -> None:
        """Add (customer_id, order_id, time in days, product_id) lines; empty ids are skipped."""
        customers, products, orders = self.customers, self.products, self._orders
        o_cust, o_time, l_order, l_prod = self._o_cust, self._o_time, self._l_order, self._l_prod
        for customer, order, t, product in lines:
            c, p, oid = str(customer), str(product), str(order)
            if not c or not p or not oid:
                continue
            u = customers.setdefault(c, len(customers))
            o = orders.setdefault((u, oid), len(orders))
            if o == len(o_cust):
                o_cust.append(u)
                o_time.append(t)
            elif t < o_time[o]:
                o_time[o] = t
            l_order.append(o)
            l_prod.append(products.setdefault(p, len(products)))

    def orders(self) -> Orders:
        """The orders added so far: sorted by customer, time, first appearance; one line per product."""
        n_p = max(len(self.products), 1)
        order_customer = np.frombuffer(self._o_cust, dtype=np.int64).copy() if self._o_cust else np.zeros(0, np.int64)
        order_time = np.frombuffer(self._o_time, dtype=np.float64).copy() if self._o_time else np.zeros(0)
        by = np.lexsort((np.arange(len(order_customer)), order_time, order_customer))  # customer, time, first seen
        rank = np.empty_like(by)
        rank[by] = np.arange(len(by))
        l_order = np.frombuffer(self._l_order, dtype=np.int64) if self._l_order else np.zeros(0, np.int64)
        l_prod = np.frombuffer(self._l_prod, dtype=np.int64) if self._l_prod else np.zeros(0, np.int64)
        key = np.unique(rank[l_order] * n_p + l_prod) if len(l_order) else np.zeros(0, np.int64)
        return Orders(list(self.customers), list(self.products), order_customer[by], order_time[by],
                      key // n_p, key % n_p)


def encode(lines: Iterable[tuple[Any, Any, float, Any]]) -> Orders:
    """Orders from (customer_id, order_id, time in days, product_id) lines. An order id names one order of
    one customer; its time is the earliest of its lines'. Ids become strings; empty ids are skipped."""
    encoder = Encoder()
    encoder.add(lines)
    return encoder.orders()


def split_last(orders: Orders) -> tuple[Orders, npt.NDArray[np.bool_]]:
    """Leave-last-order-out: (everything but each customer's last order when they have two or more,
    the mask of those held-out orders)."""
    start = orders.order_start()
    counts = np.diff(start)
    held = np.zeros(len(orders.order_customer), dtype=bool)
    held[start[1:][counts >= 2] - 1] = True
    return orders.keep(~held), held


def _parse_time(text: str) -> float:
    """An ISO date or date-time as days since 1970-01-01 UTC (a time without zone is taken as UTC)."""
    if len(text) == 10:
        return (date.fromisoformat(text) - date(1970, 1, 1)).days * 1.0
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.timestamp() / DAY_S


def parse_time(value: Any) -> float:
    """A date, a datetime or their ISO text as days since 1970-01-01 UTC; ValueError when it is none."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp() / DAY_S
    if isinstance(value, date):
        return (value - date(1970, 1, 1)).days * 1.0
    return _parse_time(str(value).strip())


def _delimiter(first_line: str) -> str:
    """The header's delimiter: a comma unless the columns are only found split by a semicolon or a tab."""
    for d in (",", ";", "\t"):
        if all(c in [h.strip().strip('"').lower() for h in first_line.split(d)] for c in COLUMNS):
            return d
    return ","


class Skipped:
    """The lines `read_orders_csv` left out: how many, and the first one's place and reason."""

    def __init__(self) -> None:
        self.count = 0
        self.first = ""

    def add(self, line: int, why: str) -> None:
        self.count += 1
        if not self.first:
            self.first = f"line {line}: {why}"

    def __str__(self) -> str:
        return f"{self.count} line{'s' if self.count != 1 else ''} skipped (the first: {self.first})"


def read_orders_csv(path: str | Path, progress: Callable[[int], None] | None = None,
                    skipped: Skipped | None = None) -> Orders:
    """The orders of a CSV file in the evaluation's form; OrdersFileError (one line) when it is unusable.
    `progress(characters_read)` is called now and then; lines with an empty field or a date that is not ISO
    are counted in `skipped` (and left out)."""
    path = Path(path)
    times: dict[str, float] = {}
    bad_times: set[str] = set()
    skipped = skipped if skipped is not None else Skipped()
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            read = [0]
            first = f.readline()
            if not first:
                raise OrdersFileError(f"{path}: the file is empty; expected a header with {', '.join(COLUMNS)}")
            read[0] += len(first)

            def counted() -> Iterable[str]:
                yield first
                for text in f:
                    read[0] += len(text)
                    yield text

            reader = csv.reader(counted(), delimiter=_delimiter(first))
            header = next(reader, [])
            names = [h.strip().lower() for h in header]
            missing = [c for c in COLUMNS if c not in names]
            if missing:
                raise OrdersFileError(f"{path}: no column {', '.join(missing)} in the header (it has "
                                      f"{', '.join(header)[:200]}); expected {', '.join(COLUMNS)}")
            at = [names.index(c) for c in COLUMNS]
            width = max(at) + 1
            encoder = Encoder()
            rows: list[tuple[str, str, float, str]] = []  # a batch: the lines are encoded as they come
            for n, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) < width:
                    raise OrdersFileError(f"{path}, line {n}: {len(row)} fields, expected at least {width}")
                customer, order, when, product = (row[i].strip() for i in at)
                if not (customer and order and when and product):
                    empty = next(c for c, v in zip(COLUMNS, (customer, order, when, product), strict=True) if not v)
                    skipped.add(n, f"empty {empty}")
                    continue
                t = times.get(when)
                if t is None:
                    if when in bad_times:
                        skipped.add(n, "")
                        continue
                    try:
                        t = times[when] = _parse_time(when)
                    except ValueError:
                        bad_times.add(when)
                        skipped.add(n, f"ordered_at {when[:40]!r} is not an ISO date or date-time (e.g. 2024-03-01 "
                                       "or 2024-03-01T14:30:00)")
                        continue
                rows.append((customer, order, t, product))
                if len(rows) == 50000:
                    encoder.add(rows)
                    rows = []
                    if progress is not None:
                        progress(read[0])
            encoder.add(rows)
    except OSError as err:
        raise OrdersFileError(f"{path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise OrdersFileError(f"{path}: not a UTF-8 text file") from None
    except csv.Error as err:
        raise OrdersFileError(f"{path}: not a readable CSV file: {err}") from None
    if not encoder.customers:  # (every line added has a customer)
        if skipped.count:
            raise OrdersFileError(f"{path}: no usable order lines: every one of the {skipped.count} was skipped "
                                  f"(the first: {skipped.first})")
        raise OrdersFileError(f"{path}: no order lines after the header")
    return encoder.orders()
