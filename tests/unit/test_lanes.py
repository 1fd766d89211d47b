"""Connectors stay in their lane: refused addresses (SSRF), files outside the data folders, the deadline."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from connectors.base import ConnectorError, Lanes
from connectors.csvfile import CsvConnector
from connectors.http import HttpConnector
from connectors.sql import SqlConnector
from screenpop.models import LookupQuery
from tests.conftest import free_port

Q = LookupQuery(phone="+14155550100", customer_id="c1")


@pytest.fixture
async def redirector() -> AsyncIterator[str]:
    """A local server whose /go answers a redirect to the cloud metadata address."""
    async def go(_: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    app = web.Application()
    app.router.add_get("/go", go)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def test_the_metadata_address_is_refused_by_default() -> None:
    """An http connector on 169.254.169.254 (or any link-local address) is refused when it is configured."""
    for url in ("http://169.254.169.254/latest/{customer_id}", "http://[fe80::1]/x/{phone}"):
        with pytest.raises(ConnectorError, match="link-local or cloud metadata"):
            HttpConnector.from_config("meta", {"url": url}, Lanes())
    with pytest.raises(ConnectorError, match="link-local"):
        HttpConnector.from_config("meta", {"url": "http://127.0.0.1/{phone}",
                                           "ping_url": "http://169.254.170.2/"}, Lanes())


async def test_a_redirect_to_the_metadata_address_is_refused(redirector: str) -> None:
    """A back-office answer redirecting to the metadata service does not lead there."""
    c = HttpConnector.from_config("r", {"url": redirector + "/go?x={phone}"}, Lanes())
    await c.start()
    try:
        with pytest.raises(ConnectorError, match="link-local or cloud metadata"):
            await c.fetch(Q)
    finally:
        await c.close()


async def test_the_allowlist_is_checked_on_every_resolved_address_and_by_ping() -> None:
    """With SCREENPOP_CONNECTOR_ALLOW set, a name resolving elsewhere is refused, for lookups and for ping."""
    port = free_port()
    c = HttpConnector.from_config("a", {"url": f"http://localhost:{port}/{{phone}}"}, Lanes(allow=("10.0.0.0/8",)))
    await c.start()
    try:
        with pytest.raises(ConnectorError, match="not in SCREENPOP_CONNECTOR_ALLOW"):
            await c.fetch(Q)
        with pytest.raises(ConnectorError, match="not in SCREENPOP_CONNECTOR_ALLOW"):
            await c.ping()
    finally:
        await c.close()
    allowed = HttpConnector.from_config("b", {"url": f"http://localhost:{port}/{{phone}}"},
                                        Lanes(allow=("localhost",)))
    await allowed.start()
    try:
        with pytest.raises(ConnectorError, match="cannot connect"):  # allowed: it tries, and nothing listens
            await allowed.ping()
    finally:
        await allowed.close()


def test_files_outside_the_data_folders_are_refused(tmp_path: Path) -> None:
    """SQLite and CSV files only under the data folders, never a forbidden one, also through a link."""
    data, other = tmp_path / "data", tmp_path / "other"
    data.mkdir()
    other.mkdir()
    (other / "x.csv").write_text("phone,name\n+14155550100,A\n")
    sqlite3.connect(other / "x.db").close()
    (data / "link.csv").symlink_to(other / "x.csv")
    lanes = Lanes(data_dirs=(data,), forbidden=(data / "state.db",))
    with pytest.raises(ConnectorError, match="outside the data folders"):
        CsvConnector.from_config("c", {"path": str(data / "link.csv"), "key_column": "phone"}, lanes)
    with pytest.raises(ConnectorError, match="outside the data folders"):
        SqlConnector.from_config("s", {"url": f"sqlite:///{other / 'x.db'}", "query": "SELECT 1"}, lanes)
    sqlite3.connect(data / "state.db").close()
    with pytest.raises(ConnectorError, match="screenpop itself"):
        SqlConnector.from_config("s", {"url": f"sqlite:///{data / 'state.db'}", "query": "SELECT 1"}, lanes)


async def test_a_cpu_heavy_sqlite_query_stops_at_the_deadline(tmp_path: Path) -> None:
    """A query that would run for ever is interrupted when its caller's deadline cancels it."""
    sqlite3.connect(tmp_path / "x.db").close()
    c = SqlConnector.from_config("s", {"url": f"sqlite:///{tmp_path / 'x.db'}", "pool_size": 1, "query":
                                       "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
                                       "SELECT count(*) AS c FROM n"}, Lanes())
    await c.start()
    try:
        async with asyncio.timeout(60):  # without the interrupt the cancelled query never ends: fail, not hang
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(c.fetch(Q), 0.3)
            await c.ping()  # the one pooled connection is free again
    finally:
        await c.close()


def test_a_database_server_must_be_allowed_too() -> None:
    """A PostgreSQL connector on the metadata address, or outside the allowlist, is refused when configured."""
    with pytest.raises(ConnectorError, match="link-local or cloud metadata"):
        SqlConnector.from_config("p", {"url": "postgresql://u@169.254.169.254:5432/db", "query": "SELECT 1"}, Lanes())
    with pytest.raises(ConnectorError, match="not in SCREENPOP_CONNECTOR_ALLOW"):
        SqlConnector.from_config("p", {"url": "postgresql://u@localhost/db", "query": "SELECT 1"},
                                 Lanes(allow=("10.0.0.0/8",)))
    SqlConnector.from_config("p", {"url": "postgresql://u@127.0.0.1/db", "query": "SELECT 1"},
                             Lanes(allow=("127.0.0.0/8",)))


async def test_the_journal_stays_in_its_lane_too(tmp_path: Path) -> None:
    """The wrap-up journal's targets pass the same checks: the metadata address refused when configured and
    when a write goes to an IP literal under the allowlist, a SQLite file outside the data folders refused."""
    from connectors.journal import HttpJournal, SqlJournal
    from screenpop.models import WrapUp

    with pytest.raises(ConnectorError, match="169.254.169.254"):
        HttpJournal.from_config("j", {"url": "http://169.254.169.254/latest/meta-data/"}, Lanes())
    port = free_port()
    with pytest.raises(ConnectorError, match="not in SCREENPOP_CONNECTOR_ALLOW"):
        HttpJournal.from_config("j", {"url": f"http://127.0.0.1:{port}/calls"}, Lanes(allow=("10.0.0.0/8",)))
    named = HttpJournal.from_config("n", {"url": f"http://localhost:{port}/calls"}, Lanes(allow=("10.0.0.0/8",)))
    await named.start()
    try:
        entry = WrapUp(key="k" * 16, call_id="c1", agent="alice", notes="n", disposition="resolved",
                       saved_at=datetime.now(UTC))
        with pytest.raises(ConnectorError, match="not in SCREENPOP_CONNECTOR_ALLOW"):
            await named.write(entry)  # the name resolves to 127.0.0.1, which the allowlist does not hold
        with pytest.raises(ConnectorError, match="not in SCREENPOP_CONNECTOR_ALLOW"):
            await named.ping()
    finally:
        await named.close()
    data, other = tmp_path / "data", tmp_path / "other"
    data.mkdir()
    other.mkdir()
    sqlite3.connect(other / "crm.db").close()
    with pytest.raises(ConnectorError, match="outside the data folders"):
        SqlJournal.from_config("s", {"url": f"sqlite:///{other / 'crm.db'}",
                                     "insert": "INSERT INTO calls (k) VALUES (:key)"}, Lanes(data_dirs=(data,)))
