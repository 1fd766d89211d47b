"""The offers connector: built in the background from a sales database, served from memory, rebuilt, failing
with short reasons; its catalog query; and the demo's configuration for the known caller.

The hand-made sales (one order per customer and letter group, a week apart; SKUs A..E):

    K1: A B C | A B      K2: A B | A      K3: A B D      K4: A C      K5: C D      K6: E      K7: A
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from connectors import offers as offers_module
from connectors.base import ConnectorError
from connectors.offers import OffersConnector
from connectors.offers_model import build_model, interval_text
from screenpop.config import ConnectorConfig
from screenpop.demo import demo_config
from screenpop.demo.data import KNOWN_NUMBER, build_sales_db
from screenpop.models import LookupQuery
from screenpop.plugins import connector_kind

NAMES = {"A": "Cordless Drill", "B": "Drill Bits Set", "C": "Circular Saw", "D": "Saw Blades", "E": "Work Gloves"}
BASKETS = {"K1": ["ABC", "AB"], "K2": ["AB", "A"], "K3": ["ABD"], "K4": ["AC"], "K5": ["CD"], "K6": ["E"],
           "K7": ["A"]}
LINES = [(customer, f"{customer}-{n}", f"2026-10-{1 + 7 * n:02d}", sku, NAMES[sku])
         for customer, orders in BASKETS.items() for n, skus in enumerate(orders) for sku in skus]
QUERY = "SELECT customer_id, order_id, ordered_at, sku, name FROM lines"
TODAY = "2026-11-01"
BUILD_TIMEOUT_S = 10


def again(sku: str, reason: str, due: bool | None) -> dict[str, Any]:
    return {"list": "again", "sku": sku, "name": NAMES[sku], "reason": reason, "due": due}


def fits(sku: str, reason: str) -> dict[str, Any]:
    return {"list": "fits", "sku": sku, "name": NAMES[sku], "reason": reason, "due": None}


# buyers: A 5 (K1 K2 K3 K4 K7), B 3 (K1 K2 K3), C 3 (K1 K4 K5), D 2 (K3 K5), E 1, of 7 customers
# uplift(A -> B) = 3/5 - 3/7 > 0 with 3 customers; A -> C = 2/5 - 3/7 < 0; A -> D: 1 customer, too few
# orders: 9, C in 3 (33 %), D in 2 (22 %), E in 1 (11 %); the latest tenth (8 Oct) holds A and B only
K7_OFFERS = [again("A", "bought once, 31 days ago", None),
             fits("B", "bought by 60 % of customers who bought Cordless Drill (by 43 % of all customers)"),
             fits("C", "popular: in 33 % of orders"), fits("D", "popular: in 22 % of orders")]


def q(customer_id: str | None) -> LookupQuery:
    return LookupQuery(phone="+14155550100", customer_id=customer_id)


def test_known_answers() -> None:
    """The hand-made data set gives the lists worked out by hand in the comment above."""
    model = build_model(LINES, TODAY, max_offers=3, min_customers=2, learn=False)
    assert model.offers_for("K7") == K7_OFFERS
    # K2 bought A on 1 and 8 Oct (every 7 days, 24 days ago: overdue) and B once; nothing fits A or B
    assert model.offers_for("K2") == [
        again("A", "usually every 7 days, last bought 24 days ago, overdue", True),
        again("B", "bought once, 31 days ago", None),
        fits("C", "popular: in 33 % of orders"), fits("D", "popular: in 22 % of orders"),
        fits("E", "popular: in 11 % of orders")]
    assert model.offers_for("nobody") is None
    assert (model.customers, model.products, model.lines) == (7, 5, len(LINES))


def test_support_threshold_and_max_offers() -> None:
    """min_customers 4 drops the A -> B reason (3 customers); max_offers cuts each list."""
    model = build_model(LINES, TODAY, max_offers=1, min_customers=4, learn=False)
    assert model.offers_for("K7") == [again("A", "bought once, 31 days ago", None),
                                      fits("B", "popular: in 50 % of recent orders")]


def test_odd_lines() -> None:
    """Lines without a customer, order, time or SKU are skipped, a missing name shows the SKU, ids become
    strings."""
    lines = [(1, "o1", "2026-10-01", "X", None), (2, "o2", "2026-10-01", "X", None),
             (2, "o2", "2026-10-01", "Y", "Yoke"), (None, "o3", "2026-10-01", "Y", "n"),
             (4, "o4", "2026-10-01", None, "n"), (5, None, "2026-10-01", "X", None), (6, "o6", None, "X", None)]
    model = build_model(lines, "2026-10-02", min_customers=1, learn=False)
    assert model.customers == 2 and model.lines == len(lines)
    assert model.offers_for("1") == [{"list": "again", "sku": "X", "name": "X", "reason": "bought once, yesterday",
                                      "due": None},
                                     {"list": "fits", "sku": "Y", "name": "Yoke",
                                      "reason": "popular: in 50 % of recent orders", "due": None}]


@pytest.fixture
def sales_db(tmp_path: Path) -> Iterator[str]:
    """A SQLite sales file with the hand-made lines; yields its sqlite:/// URL."""
    path = tmp_path / "sales.db"
    with contextlib.closing(sqlite3.connect(path)) as con:
        con.execute("CREATE TABLE lines (customer_id TEXT, order_id TEXT, ordered_at TEXT, sku TEXT, name TEXT)")
        con.executemany("INSERT INTO lines VALUES (?, ?, ?, ?, ?)", LINES)
        con.commit()
    yield f"sqlite:///{path}"


async def build_failed(conn: OffersConnector) -> None:
    """Wait (bounded) until a build of `conn` has failed."""
    async with asyncio.timeout(BUILD_TIMEOUT_S):
        while True:
            if conn.last_error is not None:
                return
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(options: dict[str, Any]) -> AsyncIterator[OffersConnector]:
    conn = connector_kind("offers").from_config("test-offers", {"first_build_wait_s": 0, "today": TODAY,
                                                                "learn": False, **options})
    assert isinstance(conn, OffersConnector)
    await conn.start()
    try:
        yield conn
    finally:
        await conn.close()


async def test_connector_builds_in_the_background_then_serves_from_memory(
        sales_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before the first build fetch says so; after it, offers come from memory (no query, model in a thread)."""
    threads: list[int] = []
    real_build = offers_module.build_model

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return real_build(*args, **kwargs)

    monkeypatch.setattr(offers_module, "build_model", spy)
    async with running({"url": sales_db, "query": QUERY}) as conn:
        with pytest.raises(ConnectorError, match="^offers model is still being built$"):
            await conn.fetch(q("K7"))
        await asyncio.wait_for(conn.wait_built(), BUILD_TIMEOUT_S)
        queries = 0
        real_select = conn._sql.select

        async def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal queries
            queries += 1
            return await real_select(*args, **kwargs)

        monkeypatch.setattr(conn._sql, "select", counting)
        for _ in range(20):
            assert await conn.fetch(q("K7")) == K7_OFFERS
        assert await conn.fetch(q("nobody")) is None
        assert await conn.fetch(q(None)) is None
        await conn.ping()
    assert queries == 0
    assert threads and threading.get_ident() not in threads


async def test_model_is_rebuilt_every_refresh(sales_db: str) -> None:
    """A new purchase is reflected after the next periodic rebuild (K7 buys B: B moves to "again")."""
    async with running({"url": sales_db, "query": QUERY, "refresh_s": 0.05}) as conn:
        first = await asyncio.wait_for(conn.wait_built(), BUILD_TIMEOUT_S)
        with contextlib.closing(sqlite3.connect(sales_db.removeprefix("sqlite:///"))) as con:
            con.execute("INSERT INTO lines VALUES ('K7', 'K7-1', '2026-10-31', 'B', 'Drill Bits Set')")
            con.commit()
        await asyncio.wait_for(conn.wait_built(first + 1), BUILD_TIMEOUT_S)
        got = await conn.fetch(q("K7"))
        assert [(o["list"], o["sku"]) for o in got if o["list"] == "again"] == [("again", "B"), ("again", "A")]
        assert got[0]["reason"] == "bought once, yesterday"


async def test_failed_rebuild_keeps_the_last_model(sales_db: str) -> None:
    """When a rebuild fails the last model keeps serving; ping still answers while the database does."""
    async with running({"url": sales_db, "query": QUERY, "refresh_s": 0.05}) as conn:
        await asyncio.wait_for(conn.wait_built(), BUILD_TIMEOUT_S)
        with contextlib.closing(sqlite3.connect(sales_db.removeprefix("sqlite:///"))) as con:
            con.execute("ALTER TABLE lines RENAME TO old_lines")
            con.commit()
        await build_failed(conn)
        assert conn.last_error == "database error: no such table: lines"
        assert await conn.fetch(q("K7")) == K7_OFFERS
        await conn.ping()


@pytest.mark.parametrize(
    ("options", "reason"),
    [({"query": "SELECT * FROM nowhere"}, "offers model not built: database error: no such table: nowhere"),
     ({"query": "SELECT customer_id AS who, order_id, ordered_at, sku FROM lines"},
      "offers model not built: the sales query has no column 'customer_id' (it has who, order_id, ordered_at, sku)"),
     ({"query": "SELECT customer_id, order_id, 'soon' AS ordered_at, sku FROM lines"},
      "offers model not built: the sales query's ordered_at is not a date or time: Invalid isoformat string: 'soon'"),
     ({"catalog_query": "SELECT name AS price FROM lines"},
      "offers model not built: the catalog query has no column 'sku' (it has price)"),
     ({"max_rows": 5}, "offers model not built: the sales query returned more than 5 rows (max_rows)")],
)
async def test_build_failures_are_short_errors(sales_db: str, options: dict[str, Any], reason: str) -> None:
    """A build that fails makes fetch and ping fail with a short reason (no model to serve yet)."""
    async with running({"url": sales_db, "query": QUERY, **options}) as conn:
        await build_failed(conn)
        with pytest.raises(ConnectorError) as fetched:
            await conn.fetch(q("K7"))
        with pytest.raises(ConnectorError) as pinged:
            await conn.ping()
    assert str(fetched.value) == str(pinged.value) == reason


async def test_column_names_are_configurable(sales_db: str) -> None:
    """The *_column options name the query's columns; without names the SKU shows; a catalog that lists
    only A leaves everything else out."""
    query = "SELECT customer_id AS who, order_id AS o, ordered_at AS t, sku AS item FROM lines"
    async with running({"url": sales_db, "query": query, "customer_column": "who", "sku_column": "item",
                        "order_column": "o", "time_column": "t", "name_column": "label", "max_offers": 1,
                        "catalog_query": "SELECT 'A' AS sku"}) as conn:
        await asyncio.wait_for(conn.wait_built(), BUILD_TIMEOUT_S)
        assert await conn.fetch(q("K7")) == [
            {"list": "again", "sku": "A", "name": "A", "reason": "bought once, 31 days ago", "due": None}]


@pytest.mark.parametrize(
    ("options", "field_name"),
    [({"query": "SELECT sku FROM lines WHERE customer_id = :customer_id"}, "query"),
     ({"query": "DELETE FROM lines"}, "query"), ({"url": "oracle://x/y"}, "url"),
     ({"refresh_s": 0}, "refresh_s"), ({"max_offers": 0}, "max_offers"), ({"min_customers": 0}, "min_customers")],
)
def test_bad_options_name_the_field(options: dict[str, Any], field_name: str) -> None:
    """Bad options raise pydantic.ValidationError naming the field."""
    with pytest.raises(ValidationError) as info:
        connector_kind("offers").from_config("bad", {"url": "sqlite:///x.db", "query": QUERY, **options})
    assert [e["loc"][0] for e in info.value.errors()] == [field_name]


async def test_demo_offers_for_the_known_caller(tmp_path: Path) -> None:
    """The demo's offers connector config is valid; the known caller (C1001) gets both lists, with reorder
    intervals that SQL confirms, nothing out of stock and no durable they own."""
    path = tmp_path / "sales.db"
    build_sales_db(path)
    [raw] = [c for c in demo_config(path, "http://127.0.0.1:1", "http://127.0.0.1:2")["connectors"]
             if c["name"] == "offers"]
    config = ConnectorConfig.model_validate(raw)
    with contextlib.closing(sqlite3.connect(path)) as con:
        [customer] = con.execute("SELECT id FROM customers WHERE phone = ?", (KNOWN_NUMBER,)).fetchall()
        assert customer == ("C1001",)
        bought = {sku: (n, first, last) for sku, n, first, last in con.execute(
            "SELECT l.sku, count(*), min(date(o.ordered_at)), max(date(o.ordered_at)) FROM order_lines l "
            "JOIN orders o ON o.id = l.order_id WHERE o.customer_id = 'C1001' GROUP BY l.sku")}
        lacking = {sku for (sku,) in con.execute("SELECT sku FROM products WHERE in_stock = 0")}
        durable = {sku for (sku,) in con.execute("SELECT sku FROM products WHERE durable = 1")}
        names = dict(con.execute("SELECT sku, name FROM products").fetchall())
    conn = connector_kind(config.kind).from_config(config.name, config.options)
    assert isinstance(conn, OffersConnector)
    await conn.start()
    try:
        await asyncio.wait_for(conn.wait_built(), BUILD_TIMEOUT_S)
        got = await conn.fetch(q("C1001"))
    finally:
        await conn.close()
    assert got is not None
    assert [o["list"] for o in got] == ["again"] * 3 + ["fits"] * 3
    today = date.fromisoformat(raw["options"]["today"])
    for o in got:
        assert o["sku"] not in lacking and o["price"] > 0 and o["currency"] == "USD"
        if o["list"] == "again":
            n, first, last = bought[o["sku"]]
            since = (today - date.fromisoformat(last)).days
            assert o["sku"] not in durable
            if n >= 2:
                every = (date.fromisoformat(last) - date.fromisoformat(first)).days / (n - 1)
                assert o["reason"].startswith(f"usually {interval_text(every)}, last bought {since} days ago, ")
            else:
                assert o["reason"] == f"bought once, {since} days ago"
        else:
            assert o["sku"] not in bought
            owned_names = [names[sku] for sku in bought]
            assert any(o["reason"].endswith(f"who bought {name} ({o['reason'].rsplit('(', 1)[1]}")
                       for name in owned_names) or o["reason"].startswith("popular: ")


async def test_start_waits_for_the_first_model_by_default(sales_db: str) -> None:
    """With the default options a freshly started connector already has offers."""
    conn = connector_kind("offers").from_config("first", {"url": sales_db, "query": QUERY})
    await conn.start()
    try:
        assert await conn.fetch(q("K7"))
    finally:
        await conn.close()
