"""The sql connector: option checks, read-only execution, value conversion, failures as ConnectorError."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import secrets
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from connectors.base import ConnectorError
from connectors.sql import SqlConnector, jsonable, normalize_url
from screenpop.models import LookupQuery
from tests.conftest import free_port
from tests.contract.conftest import mysql_server_url

PHONE = "+14155550100"


@contextlib.asynccontextmanager
async def running(options: dict[str, Any]) -> AsyncIterator[SqlConnector]:
    conn = SqlConnector.from_config("test-sql", options)
    assert isinstance(conn, SqlConnector)
    await conn.start()
    try:
        yield conn
    finally:
        await conn.close()


def q(customer_id: str | None = None) -> LookupQuery:
    return LookupQuery(phone=PHONE, raw=PHONE, customer_id=customer_id)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[str]:
    """A SQLite file with three customers; yields its plain sqlite:/// URL."""
    path = tmp_path / "crm.db"
    with contextlib.closing(sqlite3.connect(path)) as con:
        con.execute("CREATE TABLE customers (id TEXT PRIMARY KEY, name TEXT, phone TEXT)")
        con.executemany("INSERT INTO customers VALUES (?, ?, ?)",
                        [("C1", "Ada", PHONE), ("C2", "Bob", PHONE), ("C3", "Cy", "+1999")])
        con.commit()
    yield f"sqlite:///{path}"


def count_rows(url: str) -> int:
    with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as con:
        return con.execute("SELECT count(*) FROM customers").fetchone()[0]


@pytest.mark.parametrize(
    "query",
    [
        "DELETE FROM customers",
        "UPDATE customers SET name = 'x'",
        "INSERT INTO customers VALUES ('C9', 'Eve', :phone)",
        "DROP TABLE customers",
        "SELECT 1; DROP TABLE customers",
        "SELECT 1; SELECT 2",
        "-- a comment only",
        "",
        "SELECT :who",
        "SELECT 'unterminated",
        "SELECT * FROM customers INTO OUTFILE '/tmp/x.csv'",
        "SELECT id FROM customers WHERE phone = :phone INTO  dumpfile '/tmp/x'",
    ],
)
def test_query_refused_at_options_time(query: str) -> None:
    """Anything but one SELECT / WITH statement with known parameters is refused, naming the query field."""
    with pytest.raises(ValidationError) as info:
        SqlConnector.from_config("bad", {"url": "sqlite:///x.db", "query": query})
    assert [e["loc"][0] for e in info.value.errors()] == ["query"]


@pytest.mark.parametrize(
    ("query", "stored"),
    [
        ("  -- lead\n/* c */ select id from t where phone = :phone", None),
        ("WITH x AS (SELECT 1 AS a) SELECT a FROM x", None),
        ("SELECT ';' AS s, 'it''s' AS q FROM t WHERE a = :raw;", "SELECT ';' AS s, 'it''s' AS q FROM t WHERE a = :raw"),
        ("SELECT a::text FROM t WHERE b = :customer_id AND c = :called; -- done", None),
    ],
)
def test_query_accepted(query: str, stored: str | None) -> None:
    """Comments, quoted semicolons, casts and one trailing ';' are fine; the trailing ';' is dropped."""
    conn = SqlConnector.from_config("ok", {"url": "sqlite:///x.db", "query": query})
    if stored is not None:
        assert conn.options.query == stored


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:pw@db:5432/crm", "postgresql+asyncpg://u:pw@db:5432/crm"),
        ("postgresql://u@db/crm", "postgresql+asyncpg://u@db/crm"),
        ("postgresql+asyncpg://u@db/crm", "postgresql+asyncpg://u@db/crm"),
        ("sqlite:///data/crm.db", "sqlite+aiosqlite:///data/crm.db"),
        ("sqlite+aiosqlite:///crm.db", "sqlite+aiosqlite:///crm.db"),
        ("mysql://root@127.0.0.1:3306/test", "mysql+aiomysql://root@127.0.0.1:3306/test"),
        ("mariadb://u:pw@db/crm", "mysql+aiomysql://u:pw@db/crm"),
        ("mysql+aiomysql://u@db/crm", "mysql+aiomysql://u@db/crm"),
    ],
)
def test_url_rewritten_to_async_driver(url: str, expected: str) -> None:
    """Plain PostgreSQL, MySQL/MariaDB and SQLite URLs get their async driver; the password is kept."""
    assert normalize_url(url) == expected


@pytest.mark.parametrize("url", ["oracle://u:hunter2@db/x", "postgresql+psycopg2://u:hunter2@db/x", "not a url",
                                 "mysql+pymysql://u:hunter2@db/x", "mariadb+mysqldb://u:hunter2@db/x"])
def test_other_drivers_refused(url: str) -> None:
    """Other drivers are refused on the url field, without repeating the URL (or its password)."""
    with pytest.raises(ValidationError) as info:
        SqlConnector.from_config("bad", {"url": url, "query": "SELECT 1"})
    assert [e["loc"][0] for e in info.value.errors()] == ["url"]
    assert "hunter2" not in str(info.value)


def test_mysql_needs_aiomysql(monkeypatch: pytest.MonkeyPatch) -> None:
    """A mysql:// URL is refused with a clear message when aiomysql is not installed (simulated here)."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "aiomysql" else real(name, *a))
    with pytest.raises(ValidationError, match="aiomysql package, which is not installed"):
        SqlConnector.from_config("bad", {"url": "mysql://u@db/x", "query": "SELECT 1"})


@pytest.mark.parametrize(
    "query",
    [
        "WITH x AS (SELECT 1) DELETE FROM customers",
        "WITH x AS (SELECT 1) INSERT INTO customers SELECT 'C9', 'Eve', :phone FROM x",
        "WITH x AS (SELECT 1) UPDATE customers SET name = 'x'",
    ],
)
async def test_sqlite_write_through_cte_fails(db: str, query: str) -> None:
    """A write smuggled through a CTE fails on SQLite (query_only), and the data stays as it was."""
    async with running({"url": db, "query": query}) as conn:
        with pytest.raises(ConnectorError, match="readonly"):
            await conn.fetch(q())
    assert count_rows(db) == 3


async def test_sqlite_rows_one_and_max_rows(db: str) -> None:
    """Rows come back as dicts, at most max_rows of them; one=True gives the first row or None."""
    select = "SELECT id, name FROM customers WHERE phone = :phone ORDER BY id"
    async with running({"url": db, "query": select, "max_rows": 1}) as conn:
        assert await conn.fetch(q()) == [{"id": "C1", "name": "Ada"}]
    async with running({"url": db, "query": select}) as conn:
        assert await conn.fetch(q()) == [{"id": "C1", "name": "Ada"}, {"id": "C2", "name": "Bob"}]
    by_id = "SELECT name FROM customers WHERE id = :customer_id"
    async with running({"url": db, "query": by_id, "one": True}) as conn:
        assert await conn.fetch(q("C3")) == {"name": "Cy"}
        assert await conn.fetch(q("C9")) is None
        assert await conn.fetch(q(None)) is None  # an unknown customer_id is bound as ""


async def test_query_without_parameters(db: str) -> None:
    """A query that names no parameter gets none bound."""
    async with running({"url": db, "query": "SELECT count(*) AS n FROM customers", "one": True}) as conn:
        assert await conn.fetch(q()) == {"n": 3}


async def test_bad_sql_at_run_time_is_a_short_error(db: str) -> None:
    """SQL that fails in the database gives a one-line reason, without SQLAlchemy's SQL echo or links."""
    async with running({"url": db, "query": "SELECT * FROM nowhere"}) as conn:
        with pytest.raises(ConnectorError) as info:
            await conn.fetch(q())
    assert str(info.value) == "database error: no such table: nowhere"


async def test_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    """A missing SQLite file gives ConnectorError for fetch and ping, and no empty file appears."""
    path = tmp_path / "missing.db"
    async with running({"url": f"sqlite:///{path}", "query": "SELECT 1 AS x"}) as conn:
        with pytest.raises(ConnectorError, match="database file not found"):
            await conn.fetch(q())
        with pytest.raises(ConnectorError, match="database file not found"):
            await conn.ping()
    assert not path.exists()


async def test_database_down_names_only_host_and_port() -> None:
    """A PostgreSQL URL at a closed port gives 'cannot connect to host:port', without the password."""
    port = free_port()
    options = {"url": f"postgresql://postgres:hunter2@127.0.0.1:{port}/test", "query": "SELECT 1 AS x"}
    async with running(options) as conn:
        with pytest.raises(ConnectorError) as fetched:
            await conn.fetch(q())
        with pytest.raises(ConnectorError) as pinged:
            await conn.ping()
    assert str(fetched.value) == str(pinged.value) == f"cannot connect to 127.0.0.1:{port}"


def test_jsonable_values() -> None:
    """Decimal -> float, dates and times -> ISO strings, bytes -> hex, UUID -> str, non-finite -> None."""
    stamp = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    assert jsonable(Decimal("12.50")) == 12.5
    assert jsonable(stamp) == "2024-05-01T12:30:00+00:00"
    assert jsonable(date(2024, 5, 1)) == "2024-05-01"
    assert jsonable(time(8, 15)) == "08:15:00"
    assert jsonable(timedelta(minutes=2)) == 120.0
    assert jsonable(b"\x01\xff") == "01ff"
    assert jsonable(UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert jsonable(Decimal("NaN")) is None
    assert jsonable({"a": [Decimal("1.5"), None, True]}) == {"a": [1.5, None, True]}


@pytest.fixture
async def pg_schema(database_url: str) -> AsyncIterator[str]:
    """A fresh PostgreSQL schema with a `customers` table; dropped afterwards."""
    schema = f"screenpop_test_{secrets.token_hex(6)}"
    engine = create_async_engine(normalize_url(database_url))
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE SCHEMA {schema}"))
            await conn.execute(text(f"CREATE TABLE {schema}.customers (id TEXT PRIMARY KEY, name TEXT)"))
            await conn.execute(text(f"INSERT INTO {schema}.customers VALUES ('C1', 'Ada')"))
        yield schema
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        await engine.dispose()


async def test_postgres_write_through_cte_fails(database_url: str, pg_schema: str) -> None:
    """A write smuggled through a CTE fails on PostgreSQL (read-only transaction); the row stays."""
    delete = f"WITH d AS (DELETE FROM {pg_schema}.customers RETURNING id) SELECT id FROM d"
    async with running({"url": database_url, "query": delete}) as conn:
        with pytest.raises(ConnectorError, match="read-only transaction"):
            await conn.fetch(q())
    count = f"SELECT count(*) AS n FROM {pg_schema}.customers"
    async with running({"url": database_url, "query": count, "one": True}) as conn:
        assert await conn.fetch(q()) == {"n": 1}


async def test_postgres_value_conversion(database_url: str) -> None:
    """Real PostgreSQL values (numeric, timestamptz, date, bytea, uuid) come back JSON-friendly."""
    select = (
        "SELECT 12.50::numeric AS amount, timestamptz '2024-05-01 12:30:00+00' AS at, "
        "date '2024-05-01' AS day, '\\x01ff'::bytea AS raw, "
        "'00000000-0000-0000-0000-000000000001'::uuid AS ref, :phone AS phone"
    )
    async with running({"url": database_url, "query": select, "one": True}) as conn:
        row = await conn.fetch(q())
    assert row == {
        "amount": 12.5,
        "at": "2024-05-01T12:30:00+00:00",
        "day": "2024-05-01",
        "raw": "01ff",
        "ref": "00000000-0000-0000-0000-000000000001",
        "phone": PHONE,
    }


async def test_postgres_cancelled_query_leaves_connector_usable(database_url: str) -> None:
    """A slow query cancelled by the caller's wait_for leaves the connector working."""
    select = "SELECT pg_sleep(CASE WHEN :raw = 'slow' THEN 30 ELSE 0 END)::text AS slept, 1 AS n"
    async with running({"url": database_url, "query": select, "one": True, "pool_size": 1}) as conn:
        slow = LookupQuery(phone=PHONE, raw="slow")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(conn.fetch(slow), 0.3)
        assert (await conn.fetch(q()))["n"] == 1


@pytest.fixture
async def my_table() -> AsyncIterator[tuple[str, str]]:
    """The MySQL/MariaDB URL and a fresh, uniquely named `customers`-like table with one row; dropped after."""
    url = mysql_server_url()
    table = f"screenpop_test_{secrets.token_hex(6)}"
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE TABLE {table} (id VARCHAR(16) PRIMARY KEY, name VARCHAR(64))"))
            await conn.execute(text(f"INSERT INTO {table} VALUES ('C1', 'Ada')"))
        yield url, table
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP FUNCTION IF EXISTS {table}_f"))
            await conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
        await engine.dispose()


async def test_mysql_write_through_a_stored_function_fails(my_table: tuple[str, str]) -> None:
    """On MySQL/MariaDB every lookup runs in a READ ONLY transaction: a writing function fails, the row stays."""
    url, table = my_table
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE FUNCTION {table}_f() RETURNS INT MODIFIES SQL DATA "
                                    f"BEGIN DELETE FROM {table}; RETURN 1; END"))
    finally:
        await engine.dispose()
    async with running({"url": url, "query": f"SELECT {table}_f() AS n"}) as conn:
        with pytest.raises(ConnectorError, match="^database error: Cannot execute statement in a READ ONLY"):
            await conn.fetch(q())
    async with running({"url": url, "query": f"SELECT count(*) AS n FROM {table}", "one": True}) as conn:
        assert await conn.fetch(q()) == {"n": 1}


async def test_mysql_values_and_errors(my_table: tuple[str, str]) -> None:
    """MySQL values come back JSON-friendly, a '%' in the query is kept, and errors are one clean line."""
    url, table = my_table
    select = (f"SELECT id, name, 12.50 AS amount, DATE('2024-05-01') AS day, 'x%' AS pct, :phone AS phone "
              f"FROM {table} WHERE id = :customer_id")
    async with running({"url": url, "query": select, "one": True}) as conn:
        assert await conn.fetch(q("C1")) == {"id": "C1", "name": "Ada", "amount": 12.5, "day": "2024-05-01",
                                             "pct": "x%", "phone": PHONE}
        assert await conn.fetch(q("C9")) is None
    async with running({"url": url, "query": f"SELECT * FROM {table}_nowhere"}) as conn:
        with pytest.raises(ConnectorError) as info:
            await conn.fetch(q())
    assert str(info.value) == f"database error: Table 'test.{table}_nowhere' doesn't exist"


async def test_mysql_down_names_only_host_and_port() -> None:
    """A MySQL URL at a closed port gives 'cannot connect to host:port', without the password."""
    port = free_port()
    options = {"url": f"mysql://root:hunter2@127.0.0.1:{port}/test", "query": "SELECT 1 AS x"}
    async with running(options) as conn:
        with pytest.raises(ConnectorError) as fetched:
            await conn.fetch(q())
        with pytest.raises(ConnectorError) as pinged:
            await conn.ping()
    assert str(fetched.value) == str(pinged.value) == f"cannot connect to 127.0.0.1:{port}"


async def test_mysql_cancelled_query_leaves_connector_usable() -> None:
    """A slow MySQL query cancelled by the caller's wait_for leaves the connector (and its pool) working."""
    select = "SELECT SLEEP(IF(:raw = 'slow', 5, 0)) AS slept, 1 AS n"
    async with running({"url": mysql_server_url(), "query": select, "one": True, "pool_size": 1}) as conn:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(conn.fetch(LookupQuery(phone=PHONE, raw="slow")), 0.3)
        assert (await conn.fetch(q()))["n"] == 1
