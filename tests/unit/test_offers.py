"""The offers model on a hand-made sales data set with known answers, the offers connector, and the demo.

The hand-made data set (SKUs A..E; one line per purchase, a repeat purchase counts once):

    K1: A B C      K2: A B (A twice)      K3: A B D      K4: A C      K5: C D      K6: E      K7: A

    buyers:  A = 5 (K1 K2 K3 K4 K7)   B = 3 (K1 K2 K3)   C = 3 (K1 K4 K5)   D = 2 (K3 K5)   E = 1 (K6)
    both:    A&B = 3 (K1 K2 K3)   A&C = 2 (K1 K4)   A&D = 1 (K3)   B&C = 1 (K1)   B&D = 1 (K3)
             C&D = 1 (K5)         E with anything = 0

With min_customers = 2 only the pairs A&B (3) and A&C (2) count:
    K7 owns A      B: conf(A->B) = 3/5 = 60 %      C: conf(A->C) = 2/5 = 40 %      (D: A&D = 1, too few)
    K4 owns A C    B: conf(A->B) = 60 % (C&B = 1 does not count)
    K5 owns C D    A: conf(C->A) = 2/3 = 66.7 % -> "67 %" (D&A = 1 does not count)
    K2 owns A B    C: conf(A->C) = 40 % (B&C = 1 does not count)
    K1 owns A B C  nothing: D is bought with A, B and C by one customer each
    K6 owns E      nothing: nobody else bought E
With min_customers = 1, K1 gets D: conf(A->D) = 1/5 = 20 %, conf(B->D) = 1/3, conf(C->D) = 1/3; B and C
tie at 33 % with the same support (1), and the smaller SKU (B) is named.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from connectors import offers as offers_module
from connectors.base import ConnectorError
from connectors.offers import OffersConnector
from connectors.offers_model import build_model, percent
from screenpop.config import ConnectorConfig
from screenpop.demo.data import KNOWN_NUMBER, build_sales_db
from screenpop.models import LookupQuery
from screenpop.plugins import connector_kind

NAMES = {"A": "Cordless Drill", "B": "Drill Bits Set", "C": "Circular Saw", "D": "Saw Blades", "E": "Work Gloves"}
BASKETS = {"K1": "ABC", "K2": "AAB", "K3": "ABD", "K4": "AC", "K5": "CD", "K6": "E", "K7": "A"}
LINES = [(customer, sku, NAMES[sku]) for customer, skus in BASKETS.items() for sku in skus]
QUERY = "SELECT customer_id, sku, name FROM lines"
BUILD_TIMEOUT_S = 10


def offer(sku: str, because: str, pct: int, score: float, support: int) -> dict[str, Any]:
    return {"sku": sku, "name": NAMES[sku], "score": score, "support": support,
            "reason": f"bought by {pct} % of customers who bought {NAMES[because]}"}


def q(customer_id: str | None) -> LookupQuery:
    return LookupQuery(phone="+14155550100", customer_id=customer_id)


def test_known_answers() -> None:
    """The hand-made data set gives the offers computed by hand in the module docstring."""
    model = build_model(LINES, max_offers=3, min_customers=2)
    assert model.offers_for("K7") == [offer("B", "A", 60, 0.6, 3), offer("C", "A", 40, 0.4, 2)]
    assert model.offers_for("K4") == [offer("B", "A", 60, 0.6, 3)]
    assert model.offers_for("K5") == [offer("A", "C", 67, 0.667, 2)]
    assert model.offers_for("K2") == [offer("C", "A", 40, 0.4, 2)]
    assert model.offers_for("K1") is None
    assert model.offers_for("K6") is None
    assert model.offers_for("nobody") is None
    assert (model.customers, model.products, model.lines) == (7, 5, len(LINES))


def test_support_threshold_ties_and_max_offers() -> None:
    """min_customers 1 lets single co-purchases count; ties go to the smaller SKU; max_offers cuts the list."""
    model = build_model(LINES, max_offers=3, min_customers=1)
    assert model.offers_for("K1") == [offer("D", "B", 33, 0.333, 1)]
    assert model.offers_for("K7") == [offer("B", "A", 60, 0.6, 3), offer("C", "A", 40, 0.4, 2),
                                      offer("D", "A", 20, 0.2, 1)]
    assert build_model(LINES, max_offers=1, min_customers=1).offers_for("K7") == [offer("B", "A", 60, 0.6, 3)]
    assert build_model(LINES, max_offers=3, min_customers=4).offers == {}


def test_odd_lines_and_rounding() -> None:
    """Lines without a customer or SKU are skipped, a missing name shows the SKU, ids become strings."""
    lines = [(1, "X", None), (2, "X", None), (2, "Y", "Yoke"), (3, "X", ""), (3, "Y", None), (None, "Y", "n"),
             (4, "", "n"), (1, None, "n")]
    model = build_model(lines, min_customers=2)
    # X: bought by 1, 2, 3; X&Y: 2, 3 -> customer 1 gets Y at 2/3
    assert model.offers_for("1") == [{"sku": "Y", "name": "Yoke", "score": 0.667, "support": 2,
                                      "reason": "bought by 67 % of customers who bought X"}]
    assert [percent(x) for x in (0.345, 0.3449, 2 / 3, 1.0)] == [35, 34, 67, 100]


@pytest.fixture
def sales_db(tmp_path: Path) -> Iterator[str]:
    """A SQLite sales file with the hand-made lines; yields its sqlite:/// URL."""
    path = tmp_path / "sales.db"
    with contextlib.closing(sqlite3.connect(path)) as con:
        con.execute("CREATE TABLE lines (customer_id TEXT, sku TEXT, name TEXT)")
        con.executemany("INSERT INTO lines VALUES (?, ?, ?)", LINES)
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
    conn = connector_kind("offers").from_config("test-offers", {"first_build_wait_s": 0, **options})
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

    def spy(*args: Any) -> Any:
        threads.append(threading.get_ident())
        return real_build(*args)

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
            assert await conn.fetch(q("K7")) == [offer("B", "A", 60, 0.6, 3), offer("C", "A", 40, 0.4, 2)]
        assert await conn.fetch(q("K6")) is None
        assert await conn.fetch(q(None)) is None
        await conn.ping()
    assert queries == 0
    assert threads and threading.get_ident() not in threads


async def test_model_is_rebuilt_every_refresh(sales_db: str) -> None:
    """A new purchase is reflected after the next periodic rebuild (K7 buys B: only C is left, at 40 %)."""
    async with running({"url": sales_db, "query": QUERY, "refresh_s": 0.05}) as conn:
        first = await asyncio.wait_for(conn.wait_built(), BUILD_TIMEOUT_S)
        with contextlib.closing(sqlite3.connect(sales_db.removeprefix("sqlite:///"))) as con:
            con.execute("INSERT INTO lines VALUES ('K7', 'B', 'Drill Bits Set')")
            con.commit()
        await asyncio.wait_for(conn.wait_built(first + 1), BUILD_TIMEOUT_S)
        # buyers(A) = 5, A&C = 2 still; B&C = 1 and B&D = 1 still too few
        assert await conn.fetch(q("K7")) == [offer("C", "A", 40, 0.4, 2)]


async def test_failed_rebuild_keeps_the_last_model(sales_db: str) -> None:
    """When a rebuild fails the last model keeps serving; ping still answers while the database does."""
    async with running({"url": sales_db, "query": QUERY, "refresh_s": 0.05}) as conn:
        await asyncio.wait_for(conn.wait_built(), BUILD_TIMEOUT_S)
        with contextlib.closing(sqlite3.connect(sales_db.removeprefix("sqlite:///"))) as con:
            con.execute("ALTER TABLE lines RENAME TO old_lines")
            con.commit()
        await build_failed(conn)
        assert conn.last_error == "database error: no such table: lines"
        assert (await conn.fetch(q("K7")))[0]["sku"] == "B"
        await conn.ping()


@pytest.mark.parametrize(
    ("options", "reason"),
    [({"query": "SELECT * FROM nowhere"}, "offers model not built: database error: no such table: nowhere"),
     ({"query": "SELECT customer_id AS who, sku FROM lines"},
      "offers model not built: the sales query has no column 'customer_id' (it has who, sku)"),
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
    """customer_column, sku_column and name_column name the query's columns; without names the SKU shows."""
    query = "SELECT customer_id AS who, sku AS item FROM lines"
    async with running({"url": sales_db, "query": query, "customer_column": "who", "sku_column": "item",
                        "name_column": "label", "max_offers": 1}) as conn:
        await asyncio.wait_for(conn.wait_built(), BUILD_TIMEOUT_S)
        assert await conn.fetch(q("K7")) == [{"sku": "B", "name": "B", "score": 0.6, "support": 3,
                                              "reason": "bought by 60 % of customers who bought A"}]


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


# The snippet given to the demo's config (screenpop/demo/__init__.py, `demo_config`), with {db_url} filled in.
DEMO_SNIPPET = """
- name: offers
  kind: offers
  role: section
  title: Suggested offers
  timeout_ms: 300
  options:
    url: "{db_url}"
    query: >-
      SELECT o.customer_id AS customer_id, l.sku AS sku, p.name AS name
      FROM order_lines l JOIN orders o ON o.id = l.order_id JOIN products p ON p.sku = l.sku
    refresh_s: 600
    max_offers: 3
    min_customers: 2
"""

# An independent computation of the same offers, in SQL: confidence(X -> Y) for every X the customer owns
# and Y it does not, the best X per Y (ties: larger support, smaller X), the best three Ys.
EXPECTED_SQL = """
WITH owned AS (SELECT DISTINCT o.customer_id AS c, l.sku AS sku
               FROM order_lines l JOIN orders o ON o.id = l.order_id),
     buyers AS (SELECT sku, count(*) AS n FROM owned GROUP BY sku),
     pairs AS (SELECT a.sku AS x, b.sku AS y, count(*) AS both_n
               FROM owned a JOIN owned b ON a.c = b.c AND a.sku <> b.sku GROUP BY a.sku, b.sku),
     scored AS (SELECT p.y, p.x, p.both_n, CAST(p.both_n AS REAL) / bu.n AS conf,
                       row_number() OVER (PARTITION BY p.y ORDER BY CAST(p.both_n AS REAL) / bu.n DESC,
                                          p.both_n DESC, p.x) AS rank
                FROM pairs p JOIN buyers bu ON bu.sku = p.x
                WHERE p.x IN (SELECT sku FROM owned WHERE c = :c)
                  AND p.y NOT IN (SELECT sku FROM owned WHERE c = :c) AND p.both_n >= 2)
SELECT s.y, round(s.conf, 3), s.both_n, px.name FROM scored s JOIN products px ON px.sku = s.x
WHERE s.rank = 1 ORDER BY s.conf DESC, s.both_n DESC, s.y LIMIT 3
"""


async def test_demo_snippet_offers_for_the_known_caller(tmp_path: Path) -> None:
    """The demo snippet is a valid connector config; the known caller (C1001) gets offers matching SQL's."""
    path = tmp_path / "sales.db"
    build_sales_db(path)
    [raw] = yaml.safe_load(DEMO_SNIPPET.format(db_url=f"sqlite:///{path}"))
    config = ConnectorConfig.model_validate(raw)
    with contextlib.closing(sqlite3.connect(path)) as con:
        [customer] = con.execute("SELECT id FROM customers WHERE phone = ?", (KNOWN_NUMBER,)).fetchall()
        assert customer == ("C1001",)
        owned = {sku for (sku,) in con.execute("SELECT DISTINCT l.sku FROM order_lines l JOIN orders o "
                                               "ON o.id = l.order_id WHERE o.customer_id = 'C1001'")}
        owned_names = {name for (name,) in con.execute(
            f"SELECT name FROM products WHERE sku IN ({','.join('?' * len(owned))})", sorted(owned))}
        expected = con.execute(EXPECTED_SQL, {"c": "C1001"}).fetchall()
    conn = connector_kind(config.kind).from_config(config.name, config.options)
    assert isinstance(conn, OffersConnector)
    await conn.start()
    try:
        await asyncio.wait_for(conn.wait_built(), BUILD_TIMEOUT_S)
        got = await conn.fetch(q("C1001"))
    finally:
        await conn.close()
    assert got is not None and len(got) == 3
    assert [(o["sku"], o["score"], o["support"]) for o in got] == [(y, s, n) for y, s, n, _ in expected]
    assert [o["reason"].rsplit(" who bought ", 1)[1] for o in got] == [name for *_, name in expected]
    for o in got:
        assert o["sku"] not in owned
        assert o["reason"].rsplit(" who bought ", 1)[1] in owned_names
        assert o["reason"].startswith(f"bought by {percent(o['score'])} % of customers")


async def test_start_waits_for_the_first_model_by_default(sales_db: str) -> None:
    """With the default options a freshly started connector already has offers."""
    conn = connector_kind("offers").from_config("first", {"url": sales_db, "query": QUERY})
    await conn.start()
    try:
        assert await conn.fetch(q("K7"))
    finally:
        await conn.close()
