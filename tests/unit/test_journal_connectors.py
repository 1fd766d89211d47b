"""The `journal` role's kinds: HTTP (a real aiohttp server on loopback) and SQL (SQLite, PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import ValidationError

from connectors.base import CannotSearch, ConnectorError
from connectors.journal import HttpJournal, SqlJournal, check_insert
from screenpop.models import WrapUp
from tests.conftest import DATABASE_URL, free_port, need

ENTRY = WrapUp(key="sp-123", call_id="c1", agent="alice", agent_name="Alice Martin", customer_id="C 7",
               customer_name="Ada", phone="+14155550100", disposition="callback", notes="Call back \"Monday\"",
               follow_up=date(2026, 12, 1), saved_at=datetime(2026, 11, 30, 9, 0, tzinfo=UTC))


class Target:
    """A CRM endpoint: remembers requests, answers `status` (a 409 for a key it has, when asked)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 201
        self.seen: set[str] = set()

    async def handle(self, request: web.Request) -> web.Response:
        if request.method == "GET":  # the identity search
            self.requests.append({"method": "GET", "path": request.raw_path})
            return web.json_response({"data": [{"id": "C1", "name": "Ada & co", "tel": "+1"}]})
        body = await request.json()
        key = request.headers.get("Idempotency-Key", "")
        self.requests.append({"method": request.method, "path": request.raw_path, "key": key, "body": body,
                              "auth": request.headers.get("Authorization")})
        if self.status == 409 and key in self.seen:
            return web.json_response({"error": "duplicate"}, status=409)
        self.seen.add(key)
        return web.json_response({}, status=self.status if self.status != 409 else 201)


@pytest.fixture
async def target() -> AsyncIterator[tuple[Target, str]]:
    """A real HTTP server on loopback."""
    t = Target()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", t.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield t, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_http_journal_sends_the_key_and_fills_the_body_template(target: tuple[Target, str]) -> None:
    """The URL's placeholders are percent-encoded, the body keeps typed values, Idempotency-Key is sent."""
    t, url = target
    journal = HttpJournal.from_config("crm", {
        "url": f"{url}/api/customers/{{customer_id}}/calls", "method": "PUT",
        "headers": {"Authorization": "Bearer {agent}"},
        "body": {"text": "{disposition}: {notes}", "due": "{follow_up}", "who": ["{agent_name}"], "n": 1}})
    await journal.start()
    try:
        await journal.write(ENTRY)
    finally:
        await journal.close()
    (req,) = t.requests
    assert (req["method"], req["path"], req["key"]) == ("PUT", "/api/customers/C%207/calls", "sp-123")
    assert req["body"] == {"text": 'callback: Call back "Monday"', "due": "2026-12-01", "who": ["Alice Martin"], "n": 1}
    assert req["auth"] == "Bearer alice"


async def test_http_journal_default_body_is_the_entry_and_409_counts_as_delivered(target: tuple[Target, str]) -> None:
    """Without a body template the entry is sent whole; a 409 for a key the target has is no error."""
    t, url = target
    t.status = 409
    journal = HttpJournal.from_config("crm", {"url": f"{url}/journal"})
    await journal.start()
    try:
        await journal.write(ENTRY)
        await journal.write(ENTRY)
    finally:
        await journal.close()
    assert [r["key"] for r in t.requests] == ["sp-123", "sp-123"]
    assert t.requests[0]["body"]["notes"] == ENTRY.notes and t.requests[0]["body"]["follow_up"] == "2026-12-01"


async def test_http_journal_errors_are_short_reasons(target: tuple[Target, str]) -> None:
    """A 503 and a closed port are ConnectorErrors naming the status or the host."""
    t, url = target
    t.status = 503
    journal = HttpJournal.from_config("crm", {"url": f"{url}/journal"})
    dead = HttpJournal.from_config("crm", {"url": f"http://127.0.0.1:{free_port()}/journal"})
    await journal.start()
    await dead.start()
    try:
        with pytest.raises(ConnectorError, match="HTTP 503"):
            await journal.write(ENTRY)
        with pytest.raises(ConnectorError, match="cannot connect to 127.0.0.1"):
            await dead.write(ENTRY)
    finally:
        await journal.close()
        await dead.close()


@pytest.mark.parametrize("options, problem", [
    ({"url": "ftp://crm/x"}, "http:// or https://"),
    ({"url": "http://{agent}.crm/x"}, "path, query or fragment"),
    ({"url": "http://crm/{nope}"}, "unknown placeholder"),
    ({"url": "http://crm/x", "body": {"a": "{secret}"}}, "unknown placeholder"),
    ({"url": "http://crm/x", "headers": {"Idempotency-Key": "x"}}, "always sent"),
    ({"url": "https://crm/x", "verify_tls": False, "ca_file": "/etc/hostname"}, "needs verify_tls"),
    ({"url": "https://crm/x", "ca_file": "/no/such/bundle.pem"}, "no such file"),
    ({"url": "http://crm/x", "headers": {"Authorization": "x"}, "auth": {"type": "bearer", "token": "t"}},
     "set both by auth and by headers"),
    ({"url": "http://crm/x", "auth": {"type": "bearer", "token": "t\r\nX-Evil: 1"}}, "control character"),
])
def test_http_journal_refuses_bad_options(options: dict[str, Any], problem: str) -> None:
    """A bad URL, placeholder, header, CA file or auth is refused when the config is read, by the same rules
    as the http section kind."""
    with pytest.raises(ValidationError, match=problem):
        HttpJournal.from_config("crm", options)


@pytest.mark.parametrize("statement, problem", [
    ("SELECT 1", "one INSERT"),
    ("UPDATE calls SET notes = :notes", "one INSERT"),
    ("INSERT INTO a VALUES (:notes); DROP TABLE a", "only one statement"),
    ("INSERT INTO a SELECT * FROM secrets", "no SELECT"),
    ("INSERT INTO a VALUES (:password)", "unknown parameter"),
    ("INSERT INTO a (k) VALUES (:key) ON CONFLICT (k) DO UPDATE SET k = 'x'", "upsert"),
])
def test_sql_journal_takes_one_plain_insert_only(statement: str, problem: str) -> None:
    """The one write a SQL connector may do is one INSERT ... VALUES with known parameters."""
    with pytest.raises(ValueError, match=problem):
        check_insert(statement)


CREATE = ("CREATE TABLE call_log (idempotency_key VARCHAR(80) PRIMARY KEY, customer_id VARCHAR(40), "
          "disposition VARCHAR(40), notes TEXT, follow_up DATE)")
INSERT = ("INSERT INTO call_log (idempotency_key, customer_id, disposition, notes, follow_up) "
          "VALUES (:key, :customer_id, :disposition, :notes, :follow_up)")


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database with a call_log table whose key column is unique."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    url = f"sqlite+aiosqlite:///{tmp_path / 'crm.db'}" if request.param == "sqlite" else \
        DATABASE_URL.replace("postgresql://", "postgresql+asyncpg://")
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP TABLE IF EXISTS call_log"))
            await conn.execute(text(CREATE))
    except Exception as err:
        await engine.dispose()
        need(False, f"database not reachable: {err}")
    await engine.dispose()
    yield url


async def test_sql_journal_inserts_one_row_per_key(database: str) -> None:
    """Writing the same entry twice leaves one row (the unique key's violation counts as delivered)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    journal = SqlJournal.from_config("crm", {"url": database, "insert": INSERT})
    await journal.start()
    try:
        await journal.write(ENTRY)
        await journal.write(ENTRY)
        await journal.write(ENTRY.model_copy(update={"key": "sp-456", "follow_up": None}))
    finally:
        await journal.close()
    engine = create_async_engine(database)
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT idempotency_key, notes, follow_up FROM call_log "
                                        "ORDER BY idempotency_key"))).all()
    await engine.dispose()
    assert [(r[0], r[1], str(r[2]) if r[2] else None) for r in rows] == [
        ("sp-123", ENTRY.notes, "2026-12-01"), ("sp-456", ENTRY.notes, None)]
    assert json.dumps(rows[0][1])  # the notes came through as text


async def test_http_identity_search_fills_text_and_shapes_the_answer(target: tuple[Target, str]) -> None:
    """The http kind's search_url gets the typed text percent-encoded; a 404 is no result; no search_url says so."""
    from connectors.http import HttpConnector

    t, url = target
    t.status = 200
    conn = HttpConnector.from_config("crm", {"url": f"{url}/c?phone={{phone}}", "items": "data",
                                             "fields": {"id": "id", "name": "name", "phone": "tel"},
                                             "search_url": f"{url}/search?q={{text}}&n=5"})
    plain = HttpConnector.from_config("crm", {"url": f"{url}/c?phone={{phone}}"})
    await conn.start()
    try:
        assert await conn.search("Ada & co", 10) == [{"id": "C1", "name": "Ada & co", "phone": "+1"}]
        assert t.requests[-1]["path"] == "/search?q=Ada%20%26%20co&n=5"
        with pytest.raises(CannotSearch, match="cannot search"):
            await plain.search("Ada", 10)
    finally:
        await conn.close()
    with pytest.raises(ValidationError, match="text"):
        HttpConnector.from_config("crm", {"url": f"{url}/c", "search_url": f"{url}/search"})


async def test_sql_identity_search_by_name_or_digits(tmp_path: Path) -> None:
    """search_query gets :like and :digits (nothing matches digits with fewer than three); its parameters are
    checked when the config is read."""
    import sqlite3

    from connectors.sql import SqlConnector

    db = tmp_path / "c.db"
    con = sqlite3.connect(db)
    con.executescript("CREATE TABLE customers (id TEXT, name TEXT, phone TEXT);"
                      "INSERT INTO customers VALUES ('C1', 'Ada Lovelace', '+14155550100'),"
                      " ('C2', 'Grace Hopper', '+14155550111');")
    con.commit()
    con.close()
    query = ("SELECT id, name, phone FROM customers WHERE name LIKE :like OR replace(phone, '+', '') LIKE :digits"
             " ORDER BY id")
    conn = SqlConnector.from_config("c", {"url": f"sqlite:///{db}", "query": "SELECT 1 WHERE :phone = ''",
                                          "search_query": query})
    await conn.start()
    try:
        assert [r["id"] for r in await conn.search("hopper", 10)] == ["C2"]
        assert [r["id"] for r in await conn.search("555-01", 10)] == ["C1", "C2"]
        assert await conn.search("41", 10) == []
        assert [r["id"] for r in await conn.search("555", 1)] == ["C1"]
    finally:
        await conn.close()
    with pytest.raises(ValidationError, match="unknown parameter :phone"):
        SqlConnector.from_config("c", {"url": f"sqlite:///{db}", "query": "SELECT 1",
                                       "search_query": "SELECT id FROM customers WHERE phone = :phone"})
