"""One contract suite for the access audit's log: memory, SQLite and PostgreSQL; and the recorder."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from screenpop.access import AccessLog, AccessRecorder, MemoryAccessLog, SqlAccessLog
from screenpop.masking import Masker, MaskRule
from screenpop.models import Caller, Card, Customer, Section, SectionStatus
from screenpop.store import SqlStore


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AccessLog]:
    store = None
    if request.param == "memory":
        out: AccessLog = MemoryAccessLog()
    else:
        url = f"sqlite:///{tmp_path / 'state.db'}" if request.param == "sqlite" else request.getfixturevalue(
            "database_url")
        store = SqlStore(url)
        await store.start()
        out = SqlAccessLog(store)
    await out.start()
    yield out
    if store is not None:
        await store.close()


def row(at: float, agent: str, customer: str | None, action: str = "delivered") -> dict[str, object]:
    return {"at": at, "agent": agent, "call_id": f"call-{at}", "customer_id": customer, "action": action,
            "sections": ["customer", "balance"], "masked": False, "latency_ms": None}


async def test_query_by_customer_agent_and_time(log: AccessLog) -> None:
    """Rows come back newest first, filtered by customer, by agent and by time."""
    c = f"C{uuid.uuid4().hex[:6]}"
    await log.write([row(100, "alice", c), row(200, "bob", c), row(300, "alice", "other"), row(400, "alice", c)])
    assert [r["at"] for r in await log.query(customer=c)] == [400, 200, 100]
    assert [r["at"] for r in await log.query(customer=c, agent="alice")] == [400, 100]
    assert [r["at"] for r in await log.query(customer=c, since=150, until=300)] == [200]
    got = (await log.query(customer=c, limit=1))[0]
    assert got["sections"] == ["customer", "balance"] and got["masked"] is False


async def test_prune_removes_only_old_rows(log: AccessLog) -> None:
    """Pruning deletes the rows older than the cut and keeps the rest."""
    c = f"C{uuid.uuid4().hex[:6]}"
    await log.write([row(10, "alice", c), row(20, "alice", c), row(10_000_000_000, "alice", c)])
    assert await log.prune(15) >= 1
    assert [r["at"] for r in await log.query(customer=c)] == [10_000_000_000, 20]


async def test_recorder_queues_without_waiting_and_prunes_by_retention() -> None:
    """`delivered` only queues (masked said per role); flush writes; rows past the retention are pruned."""
    now = [1_000_000.0]
    log = MemoryAccessLog()
    masker = Masker(lambda: {"people": [MaskRule(field="email", rule="hide", unmasked_for=["admin"])]},
                    lambda a: "admin" if a == "ada" else "agent")
    rec = AccessRecorder(log, retention_days=1, masker=masker, role_of=masker.role_of, clock=lambda: now[0])
    data = {"match": "one", "customer": {"id": "C1", "name": "Jane", "extra": {"email": "j@x"}}, "candidates": []}
    card = Card(call_id="k", caller=Caller(raw="1"), customer=Customer(id="C1", name="Jane"),
                sections=[Section(name="customer", source="people", status=SectionStatus.OK, data=data),
                          Section(name="balance", status=SectionStatus.PENDING)])
    rec.delivered(["alice", "ada"], card)
    assert await log.query() == []
    assert await rec.flush() == 2
    rows = {r["agent"]: r for r in await log.query(customer="C1")}
    assert rows["alice"]["masked"] is True and rows["ada"]["masked"] is False
    assert rows["alice"]["sections"] == ["customer"]
    now[0] += 2 * 86400
    assert await rec.prune() == 2 and await log.query() == []
