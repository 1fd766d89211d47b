"""One contract suite for the admin store: memory, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from screenpop.store import AdminStore, MemoryStore, SqlStore, store_from_url


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AdminStore]:
    if request.param == "memory":
        s: AdminStore = MemoryStore()
    elif request.param == "sqlite":
        s = SqlStore(f"sqlite:///{tmp_path / 'state.db'}")
    else:
        base = request.getfixturevalue("database_url")
        s = SqlStore(base)
    await s.start()
    if isinstance(s, SqlStore):  # a clean slate on the shared PostgreSQL database
        from sqlalchemy import delete

        async with s.engine.begin() as conn:
            await conn.execute(delete(s.t_conn))
            await conn.execute(delete(s.t_audit))
    yield s
    await s.close()


async def test_put_then_read_back(store: AdminStore) -> None:
    """A stored connector reads back exactly, and a deletion is an override with None."""
    name = f"c{uuid.uuid4().hex[:6]}"
    body = {"name": name, "kind": "http", "options": {"url": "http://x/{phone}", "nested": {"a": [1, 2]}}}
    await store.put(name, body, "admin", {})
    assert (await store.overrides())[name] == body
    await store.put(name, None, "admin", {})
    assert (await store.overrides())[name] is None


async def test_every_change_is_audited_newest_first(store: AdminStore) -> None:
    """Each put or delete leaves who, what and when; the newest comes first."""
    await store.put("a", {"name": "a"}, "ada", {"note": 1})
    await store.put("a", None, "bob", {})
    entries = await store.audit(10)
    assert [(e["actor"], e["action"], e["target"]) for e in entries[:2]] == [("bob", "delete", "a"),
                                                                             ("ada", "put", "a")]
    assert entries[1]["detail"] == {"note": 1} and entries[0]["at"] >= entries[1]["at"]


async def test_sql_store_survives_a_restart(tmp_path: Path) -> None:
    """A second store on the same SQLite file sees what the first one wrote."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    first = SqlStore(url)
    await first.start()
    await first.put("x", {"name": "x"}, "ada", {})
    await first.close()
    second = SqlStore(url)
    await second.start()
    assert (await second.overrides()) == {"x": {"name": "x"}}
    await second.close()


async def test_instances_starting_together_on_one_database_all_start(tmp_path: Path) -> None:
    """Several instances opening one new SQLite state database at the same moment (their tables, the
    journal's and the access audit's) all start: the race to create the tables is tried again, not fatal."""
    from screenpop.access import access_log_for
    from screenpop.journalstore import journal_store_from_url

    for round_ in range(3):
        url = f"sqlite:///{tmp_path / f'shared-{round_}.db'}"
        stores = [store_from_url(url) for _ in range(4)]
        journals = [journal_store_from_url(url) for _ in range(4)]
        await asyncio.gather(*(s.start() for s in stores), *(j.start() for j in journals))
        logs = [access_log_for(s) for s in stores]
        await asyncio.gather(*(log.start() for log in logs))
        for s in stores:
            await s.put("x", {"kind": "csv"}, "ada", {})
        for s in (*stores, *journals):
            await s.close()
