"""Contract suite of the connector seam: every kind and backend passes the same tests.

Backends, each serving the same small customer dataset:
    http          a real aiohttp server on 127.0.0.1 (/customers?phone=..., /balance/{customer_id})
    sql-sqlite    a temporary SQLite file
    sql-postgres  the real PostgreSQL server (`database_url`), in a fresh schema dropped afterwards
    sql-mysql     the real MySQL / MariaDB server (`mysql_url`), in uniquely named tables dropped afterwards
    csv           two CSV files, the phone numbers written as people type them ("(415) 555-0100")

Two connectors per backend: `identity` (phone -> customers with id and name) and `section`
(customer id -> {"balance", "currency"}).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from connectors.base import Connector, ConnectorError
from connectors.sql import normalize_url
from screenpop.models import LookupQuery
from screenpop.plugins import connector_kind
from tests.conftest import free_port

CUSTOMERS = [
    {"id": "C1", "name": "Ada Lovelace", "phone": "+14155550100"},
    {"id": "C2", "name": "Alan Turing", "phone": "+14155550101"},
    {"id": "C3", "name": "Grace Hopper", "phone": "+14155550199"},
    {"id": "C4", "name": "Edsger Dijkstra", "phone": "+14155550199"},  # shares C3's number
]
BALANCES = {"C1": (120.5, "USD"), "C2": (-15.25, "EUR"), "C3": (0.0, "USD")}  # C4 has no account
UNKNOWN = "+14155550000"


@dataclass
class Source:
    """One backend: the options of its two connectors, and how to take it down."""

    kind: str
    identity: dict[str, Any]
    section: dict[str, Any]
    take_down: Callable[[], Awaitable[dict[str, Any]]]  # -> identity options aimed at the dead source


def query(phone: str, customer_id: str | None = None) -> LookupQuery:
    return LookupQuery(phone=phone, raw=phone, customer_id=customer_id)


def pairs(result: Any) -> list[tuple[str, str]]:
    """Identity records as sorted (id, name) pairs; a single dict counts as one record."""
    rows = [] if result is None else [result] if isinstance(result, dict) else result
    return sorted((str(r["id"]), r["name"]) for r in rows)


@contextlib.asynccontextmanager
async def running(kind: str, options: dict[str, Any]) -> AsyncIterator[Connector]:
    conn = connector_kind(kind).from_config(f"test-{kind}", options)
    await conn.start()
    try:
        yield conn
    finally:
        await conn.close()


def customer_app() -> web.Application:
    async def customers(request: web.Request) -> web.Response:
        phone = request.query.get("phone", "")
        return web.json_response({"data": {"customers": [c for c in CUSTOMERS if c["phone"] == phone]}})

    async def balance(request: web.Request) -> web.Response:
        found = BALANCES.get(request.match_info["customer_id"])
        if found is None:
            raise web.HTTPNotFound()
        return web.json_response({"account": {"balance": found[0]}, "currency": found[1]})

    app = web.Application()
    app.router.add_get("/customers", customers)
    app.router.add_get("/balance/{customer_id}", balance)
    return app


@contextlib.asynccontextmanager
async def http_source() -> AsyncIterator[Source]:
    runner = web.AppRunner(customer_app(), shutdown_timeout=5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    stopped = False
    identity = {
        "url": base + "/customers?phone={phone}",
        "items": "data.customers",
        "fields": {"id": "id", "name": "name", "phone": "phone"},
    }
    section = {"url": base + "/balance/{customer_id}", "fields": {"balance": "account.balance",
                                                                 "currency": "currency"}}

    async def take_down() -> dict[str, Any]:
        nonlocal stopped
        stopped = True
        await runner.cleanup()
        return identity

    try:
        yield Source("http", identity, section, take_down)
    finally:
        if not stopped:
            await runner.cleanup()


async def load_dataset(url: str, prefix: str = "", schema: str | None = None) -> None:
    """Create the two tables (in `schema` when given) and fill them."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            if schema:
                await conn.execute(text(f"CREATE SCHEMA {schema}"))
            await conn.execute(text(f"CREATE TABLE {prefix}customers (id VARCHAR(16) PRIMARY KEY, "
                                    "name VARCHAR(100) NOT NULL, phone VARCHAR(32) NOT NULL)"))
            await conn.execute(text(f"CREATE TABLE {prefix}balances (customer_id VARCHAR(16) PRIMARY KEY, "
                                    "balance NUMERIC(12, 2) NOT NULL, currency VARCHAR(3) NOT NULL)"))
            await conn.execute(text(f"INSERT INTO {prefix}customers VALUES (:id, :name, :phone)"), CUSTOMERS)
            await conn.execute(text(f"INSERT INTO {prefix}balances VALUES (:c, :b, :cur)"),
                               [{"c": c, "b": b, "cur": cur} for c, (b, cur) in BALANCES.items()])
    finally:
        await engine.dispose()


def sql_options(url: str, prefix: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    identity = {"url": url, "query": f"SELECT id, name, phone FROM {prefix}customers WHERE phone = :phone"}
    section = {
        "url": url,
        "query": f"SELECT balance, currency FROM {prefix}balances WHERE customer_id = :customer_id",
        "one": True,
    }
    return identity, section


@contextlib.asynccontextmanager
async def sqlite_source(tmp_path: Path) -> AsyncIterator[Source]:
    url = f"sqlite:///{tmp_path / 'customers.db'}"
    await load_dataset(normalize_url(url))
    identity, section = sql_options(url)

    async def take_down() -> dict[str, Any]:
        return {**identity, "url": f"sqlite:///{tmp_path / 'gone' / 'customers.db'}"}

    yield Source("sql", identity, section, take_down)


@contextlib.asynccontextmanager
async def postgres_source(database_url: str) -> AsyncIterator[Source]:
    url = normalize_url(database_url)
    schema = f"screenpop_test_{secrets.token_hex(6)}"
    try:
        await load_dataset(url, f"{schema}.", schema)
        identity, section = sql_options(database_url, f"{schema}.")

        async def take_down() -> dict[str, Any]:
            return {**identity, "url": f"postgresql://postgres@127.0.0.1:{free_port()}/test"}

        yield Source("sql", identity, section, take_down)
    finally:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        finally:
            await engine.dispose()


@contextlib.asynccontextmanager
async def mysql_source(mysql_url: str) -> AsyncIterator[Source]:
    url = normalize_url(mysql_url)
    prefix = f"screenpop_test_{secrets.token_hex(6)}_"
    try:
        await load_dataset(url, prefix)
        identity, section = sql_options(mysql_url, prefix)

        async def take_down() -> dict[str, Any]:
            return {**identity, "url": f"mysql://root@127.0.0.1:{free_port()}/test"}

        yield Source("sql", identity, section, take_down)
    finally:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                for table in ("customers", "balances"):
                    await conn.execute(text(f"DROP TABLE IF EXISTS {prefix}{table}"))
        finally:
            await engine.dispose()


TYPED_PHONES = {"+14155550100": "(415) 555-0100", "+14155550101": "+1 415-555-0101",
                "+14155550199": "415.555.0199"}  # as a spreadsheet holds them


@contextlib.asynccontextmanager
async def csv_source(tmp_path: Path) -> AsyncIterator[Source]:
    people, money = tmp_path / "customers.csv", tmp_path / "balances.csv"
    with people.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "name", "phone"])
        writer.writerows([c["id"], c["name"], TYPED_PHONES[c["phone"]]] for c in CUSTOMERS)
    with money.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["customer_id", "balance", "currency"])
        writer.writerows([c, f"{b:.2f}", cur] for c, (b, cur) in BALANCES.items())
    identity = {"path": str(people), "key_column": "phone"}
    section = {"path": str(money), "key_column": "customer_id", "key": "customer_id", "one": True,
               "fields": {"balance": "to_number(balance)", "currency": "currency"}}

    async def take_down() -> dict[str, Any]:
        return {**identity, "path": str(tmp_path / "gone" / "customers.csv")}

    yield Source("csv", identity, section, take_down)


@pytest.fixture(params=["http", "sql-sqlite", "sql-postgres", "sql-mysql", "csv"])
async def source(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Source]:
    """Each backend in turn, serving the dataset; stopped and removed afterwards."""
    if request.param == "http":
        make = http_source()
    elif request.param == "sql-sqlite":
        make = sqlite_source(tmp_path)
    elif request.param == "sql-postgres":
        make = postgres_source(request.getfixturevalue("database_url"))
    elif request.param == "sql-mysql":
        make = mysql_source(request.getfixturevalue("mysql_url"))
    else:
        make = csv_source(tmp_path)
    async with make as src:
        yield src


@pytest.fixture
async def identity(source: Source) -> AsyncIterator[Connector]:
    """A started identity connector on the backend."""
    async with running(source.kind, source.identity) as conn:
        yield conn


@pytest.fixture
async def section(source: Source) -> AsyncIterator[Connector]:
    """A started section connector on the backend."""
    async with running(source.kind, source.section) as conn:
        yield conn


def test_kind_is_registered(source: Source) -> None:
    """The kind is found by name and reports that name."""
    assert connector_kind(source.kind).kind == source.kind


async def test_identity_by_phone(identity: Connector) -> None:
    """The identity query by phone returns the matching customer with its id and name."""
    assert pairs(await identity.fetch(query("+14155550100"))) == [("C1", "Ada Lovelace")]


async def test_identity_records_carry_the_number_in_e164(identity: Connector) -> None:
    """Each identity record carries the customer's number in E.164, however the source wrote it."""
    found = await identity.fetch(query("+14155550199"))
    rows = [found] if isinstance(found, dict) else found
    assert [r["phone"] for r in rows] == ["+14155550199", "+14155550199"]


async def test_identity_shared_number_returns_both(identity: Connector) -> None:
    """A number shared by two customers returns both records."""
    found = pairs(await identity.fetch(query("+14155550199")))
    assert found == [("C3", "Grace Hopper"), ("C4", "Edsger Dijkstra")]


async def test_identity_unknown_phone_returns_nothing(identity: Connector) -> None:
    """An unknown number gives None or an empty list, not an error."""
    assert await identity.fetch(query(UNKNOWN)) in (None, [])


async def test_section_by_customer_id(section: Connector) -> None:
    """The section query by customer id returns that customer's data."""
    assert await section.fetch(query("+14155550100", "C1")) == {"balance": 120.5, "currency": "USD"}
    assert await section.fetch(query("+14155550101", "C2")) == {"balance": -15.25, "currency": "EUR"}


async def test_section_without_data_returns_nothing(section: Connector) -> None:
    """A customer with no data in the source gives None or an empty list."""
    assert await section.fetch(query("+14155550199", "C4")) in (None, [])


async def test_concurrent_fetches(identity: Connector, section: Connector) -> None:
    """Twenty fetches at once, on both connectors, all succeed with the right answers."""
    phones = [c["phone"] for c in CUSTOMERS[:2]]
    jobs = [identity.fetch(query(phones[i % 2])) for i in range(10)]
    jobs += [section.fetch(query(phones[i % 2], f"C{i % 2 + 1}")) for i in range(10)]
    results = await asyncio.gather(*jobs)
    assert [pairs(r) for r in results[:10]] == [[("C1", "Ada Lovelace")], [("C2", "Alan Turing")]] * 5
    assert [r["currency"] for r in results[10:]] == ["USD", "EUR"] * 5


async def test_ping(identity: Connector, section: Connector) -> None:
    """ping succeeds while the source is up."""
    assert await identity.ping() is None
    assert await section.ping() is None


async def test_source_gone(source: Source) -> None:
    """Once the source is gone (server stopped, DB unreachable), fetch and ping raise ConnectorError."""
    dead = await source.take_down()
    async with running(source.kind, dead) as conn:
        with pytest.raises(ConnectorError):
            await conn.fetch(query("+14155550100"))
        with pytest.raises(ConnectorError):
            await conn.ping()
