"""The access audit: who was shown which customer, when, and which sections (never the card's data).

Three actions are recorded, one row per agent:

    delivered   a card was sent to the agent (when it rang, and again once the caller was identified)
    displayed   the agent's browser confirmed it shows the card (`ack`), with the display latency
    chosen      the agent picked one of several matching customers (`select`)

Each row: at, agent, call_id, customer_id, action, sections (the names of the sections that held data),
masked (whether a masking rule hid something from this agent), latency_ms (displayed only). Rows are queued
without waiting (the call's path never waits for the database) and written each second by `AccessRecorder`,
which also deletes rows older than the retention (SCREENPOP_ACCESS_RETENTION_DAYS, default 90) every hour.
The rows live in the state store's database (SQLite or PostgreSQL, shared by the instances), or in memory
when SCREENPOP_STATE_URL is unset.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from screenpop.callstore import CallStore
from screenpop.masking import Masker
from screenpop.models import Card, SectionStatus
from screenpop.store import AdminStore, SqlStore, create_tables

log = logging.getLogger("screenpop.access")

ACTIONS = ("delivered", "displayed", "chosen")
QUEUE_MAX = 50_000  # rows waiting to be written; more are dropped (and counted)
_SHOWN = (SectionStatus.OK, SectionStatus.STALE)


class AccessLog(abc.ABC):
    """Where access rows are kept."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Create the table if needed (the state store is started before)."""

    @abc.abstractmethod
    async def write(self, rows: list[dict[str, Any]]) -> None:
        """Append rows (each with the fields listed in the module docstring)."""

    @abc.abstractmethod
    async def query(self, *, customer: str | None = None, agent: str | None = None, since: float | None = None,
                    until: float | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """Rows matching every filter given, newest first, at most `limit`."""

    @abc.abstractmethod
    async def prune(self, before: float) -> int:
        """Delete the rows older than `before` (unix seconds); how many went."""


class MemoryAccessLog(AccessLog):
    """Rows in memory (one instance, lost at restart), at most `max_rows`."""

    def __init__(self, max_rows: int = 100_000) -> None:
        self.rows: deque[dict[str, Any]] = deque(maxlen=max_rows)

    async def write(self, rows: list[dict[str, Any]]) -> None:
        """Append."""
        self.rows.extend(dict(r) for r in rows)

    async def query(self, *, customer: str | None = None, agent: str | None = None, since: float | None = None,
                    until: float | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """Newest first."""
        out = []
        for r in reversed(self.rows):
            if _matches(r, customer, agent, since, until):
                out.append(dict(r))
                if len(out) >= limit:
                    break
        return out

    async def prune(self, before: float) -> int:
        """Drop the old rows (they are in time order)."""
        n = 0
        while self.rows and self.rows[0]["at"] < before:
            self.rows.popleft()
            n += 1
        return n


def _matches(r: dict[str, Any], customer: str | None, agent: str | None, since: float | None,
             until: float | None) -> bool:
    return ((customer is None or r["customer_id"] == customer) and (agent is None or r["agent"] == agent)
            and (since is None or r["at"] >= since) and (until is None or r["at"] <= until))


class SqlAccessLog(AccessLog):
    """Rows in the state store's SQL database (table `screenpop_access`)."""

    def __init__(self, store: SqlStore) -> None:
        from sqlalchemy import JSON, Boolean, Column, Float, Index, Integer, MetaData, String, Table

        self.store = store
        self.meta = MetaData()
        self.t = Table("screenpop_access", self.meta,
                       Column("id", Integer, primary_key=True, autoincrement=True),
                       Column("at", Float, nullable=False), Column("agent", String(64), nullable=False),
                       Column("call_id", String(200), nullable=False), Column("customer_id", String(200)),
                       Column("action", String(16), nullable=False), Column("sections", JSON),
                       Column("masked", Boolean, nullable=False), Column("latency_ms", Float),
                       Index("screenpop_access_customer", "customer_id", "at"),
                       Index("screenpop_access_agent", "agent", "at"), Index("screenpop_access_at", "at"))

    async def start(self) -> None:
        """Create the table and its indexes when they do not exist."""
        await create_tables(self.store.engine, self.meta)

    async def write(self, rows: list[dict[str, Any]]) -> None:
        """One INSERT of every row."""
        from sqlalchemy import insert

        if rows:
            async with self.store.engine.begin() as conn:
                await conn.execute(insert(self.t), rows)

    async def query(self, *, customer: str | None = None, agent: str | None = None, since: float | None = None,
                    until: float | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """Newest first."""
        from sqlalchemy import select

        t = self.t
        q = select(t.c.at, t.c.agent, t.c.call_id, t.c.customer_id, t.c.action, t.c.sections, t.c.masked,
                   t.c.latency_ms)
        if customer is not None:
            q = q.where(t.c.customer_id == customer)
        if agent is not None:
            q = q.where(t.c.agent == agent)
        if since is not None:
            q = q.where(t.c.at >= since)
        if until is not None:
            q = q.where(t.c.at <= until)
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(q.order_by(t.c.at.desc(), t.c.id.desc()).limit(limit))).all()
        return [dict(r._mapping) for r in rows]

    async def prune(self, before: float) -> int:
        """DELETE the old rows."""
        from sqlalchemy import delete

        async with self.store.engine.begin() as conn:
            result = await conn.execute(delete(self.t).where(self.t.c.at < before))
        return int(result.rowcount or 0)


def access_log_for(store: AdminStore) -> AccessLog:
    """The access log next to the state store: its SQL database, else memory."""
    return SqlAccessLog(store) if isinstance(store, SqlStore) else MemoryAccessLog()


def shown(card: Card) -> tuple[str | None, list[str]]:
    """The customer a card is about (None until identified) and the sections that hold data."""
    customer = card.customer.id if card.customer is not None else None
    return customer, [s.name for s in card.sections if s.status in _SHOWN and s.data is not None]


class AccessRecorder:
    """Queues access rows without waiting and writes them in the background; prunes by retention."""

    def __init__(self, log: AccessLog, *, retention_days: float = 90, masker: Masker | None = None,
                 role_of: Callable[[str], str] = lambda _: "agent", calls: CallStore | None = None,
                 flush_s: float = 1.0, prune_s: float = 3600.0, clock: Callable[[], float] = time.time) -> None:
        self.log, self.retention_days, self.masker, self.role_of = log, retention_days, masker, role_of
        self.calls, self.flush_s, self.prune_s, self.clock = calls, flush_s, prune_s, clock
        self.queue: deque[dict[str, Any]] = deque()
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None

    # -- recording (never waits) ------------------------------------------------------------------
    def note(self, agent: str, call_id: str, card: Card, action: str, latency_ms: float | None = None,
             customer_id: str | None = None, masked_by_role: dict[str, bool] | None = None) -> None:
        """Queue one row about `card` as `agent` was shown it (`masked_by_role`: worked out once per card)."""
        if len(self.queue) >= QUEUE_MAX:
            self.dropped += 1
            return
        customer, sections = shown(card)
        role = self.role_of(agent)
        masked = masked_by_role.get(role) if masked_by_role is not None else None
        if masked is None:
            masked = self.masker is not None and self.masker.active() and self.masker.card(card, role)[1]
            if masked_by_role is not None:
                masked_by_role[role] = masked
        self.queue.append({"at": self.clock(), "agent": agent, "call_id": call_id,
                           "customer_id": customer_id or customer, "action": action, "sections": sections,
                           "masked": masked, "latency_ms": latency_ms})

    def delivered(self, agents: Iterable[str], card: Card) -> None:
        """The card went to these agents."""
        by_role: dict[str, bool] = {}
        for agent in agents:
            self.note(agent, card.call_id, card, "delivered", masked_by_role=by_role)

    async def displayed(self, agent: str, call_id: str, waited_s: float | None) -> None:
        """The agent's browser shows the card (its `ack`); the card is read from the call store."""
        card = await self._card(call_id)
        if card is not None:
            self.note(agent, call_id, card, "displayed",
                      latency_ms=round(waited_s * 1000, 1) if waited_s is not None else None)

    async def chosen(self, agent: str, call_id: str, customer_id: str) -> None:
        """The agent picked `customer_id` among several matches."""
        card = await self._card(call_id)
        if card is not None:
            self.note(agent, call_id, card, "chosen", customer_id=customer_id)

    async def _card(self, call_id: str) -> Card | None:
        if self.calls is None:
            return None
        try:
            record = await self.calls.get(call_id)
        except Exception as err:  # the audit never breaks an agent's socket
            log.warning("access audit: call %s not readable: %s", call_id, err)
            return None
        return record.card if record is not None else None

    # -- writing ----------------------------------------------------------------------------------
    async def flush(self) -> int:
        """Write what is queued; how many rows."""
        rows = list(self.queue)
        if not rows:
            return 0
        await self.log.write(rows)
        for _ in rows:
            self.queue.popleft()
        return len(rows)

    async def prune(self) -> int:
        """Delete rows past the retention."""
        return await self.log.prune(self.clock() - self.retention_days * 86400)

    async def start(self) -> None:
        """Create the table, prune once, then flush each `flush_s` and prune each `prune_s`."""
        await self.log.start()
        await self.prune()
        self._task = asyncio.create_task(self._run(), name="screenpop-access")

    async def _run(self) -> None:
        next_prune = self.clock() + self.prune_s
        while True:
            await asyncio.sleep(self.flush_s)
            try:
                await self.flush()
                if self.clock() >= next_prune:
                    next_prune = self.clock() + self.prune_s
                    await self.prune()
            except Exception as err:
                log.warning("access audit not written yet (%s); retrying", err)

    async def close(self) -> None:
        """Stop, writing what is still queued."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self.flush()
        except Exception as err:
            log.warning("access audit: %d rows not written at shutdown: %s", len(self.queue), err)
