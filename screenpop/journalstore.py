"""Where wrap-ups live first: screenpop's own journal, an outbox in the state store.

Each (call, agent) has one row, keyed by its idempotency key. A row is

    draft     notes typed so far, not saved (a transferred call shows them to the next agent)
    queued    saved by the agent, waiting for (or between) deliveries to the journal connector
    saved     delivered: the journal connector has it
    local     saved, and no journal connector is configured (screenpop's history only)

Delivery takes a row for a while (`claim`: a compare-and-set on `lease_until`, so one instance of the
cluster delivers it at a time), then marks it delivered or failed (its next try after a back-off).
The same SQLAlchemy URL as the admin store (`SCREENPOP_STATE_URL`: SQLite or PostgreSQL); memory when
unset (rows then last until restart).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, replace
from typing import Any, Literal

from screenpop.errors import StoreError
from screenpop.models import WrapUp
from screenpop.store import _async_url, open_engine

State = Literal["draft", "queued", "saved", "local"]
DONE: frozenset[str] = frozenset({"saved", "local"})


@dataclass(frozen=True, slots=True)
class Row:
    """One journal row: the entry, where its delivery stands, and its tries."""

    entry: WrapUp
    state: State
    attempts: int = 0
    next_at: float = 0.0
    last_error: str | None = None
    lease_until: float = 0.0
    delivered_at: float | None = None


class JournalStore(abc.ABC):
    """The journal's rows. Every method raises StoreError when the store cannot be reached."""

    durable = False

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections and create the table if needed."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; must not raise."""

    @abc.abstractmethod
    async def get(self, key: str) -> Row | None:
        """The row of `key`, or None."""

    @abc.abstractmethod
    async def put(self, row: Row) -> Row:
        """Store `row` unless its key's row is saved already (then that one is returned, unchanged): a
        saved wrap-up is never changed, a draft never overwrites a queued one. Returns the row as stored."""

    @abc.abstractmethod
    async def claim(self, now: float, lease_s: float, limit: int) -> list[Row]:
        """Queued rows due by `now` (next_at <= now) that nobody holds, each now held until now + lease_s
        (atomically: two instances never hold the same row), oldest first."""

    @abc.abstractmethod
    async def finish(self, key: str, *, delivered: bool, now: float, next_at: float = 0.0,
                     error: str | None = None) -> Row | None:
        """After a try: `saved`, or still `queued` with one more attempt, its next try and last error;
        the hold released. Returns the row as stored (None when it is gone)."""

    @abc.abstractmethod
    async def history(self, *, customer_id: str | None, phone: str | None, limit: int) -> list[Row]:
        """Saved, queued and local rows of a customer (by id, else by phone), newest first."""

    @abc.abstractmethod
    async def for_call(self, call_id: str) -> list[Row]:
        """Every row of a call (drafts too), oldest first."""


class MemoryJournalStore(JournalStore):
    """Rows in memory: for one instance that accepts losing unsent wrap-ups at restart."""

    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}

    async def get(self, key: str) -> Row | None:
        """The row, or None."""
        return self.rows.get(key)

    async def put(self, row: Row) -> Row:
        """Keep a saved row; otherwise store (a draft does not replace a queued row)."""
        old = self.rows.get(row.entry.key)
        if old is not None and (old.state in DONE or (row.state == "draft" and old.state != "draft")):
            return old
        self.rows[row.entry.key] = row
        return row

    async def claim(self, now: float, lease_s: float, limit: int) -> list[Row]:
        """Hold the due rows."""
        due = sorted((r for r in self.rows.values()
                      if r.state == "queued" and r.next_at <= now and r.lease_until <= now),
                     key=lambda r: r.entry.saved_at)[:limit]
        for r in due:
            self.rows[r.entry.key] = replace(r, lease_until=now + lease_s)
        return [self.rows[r.entry.key] for r in due]

    async def finish(self, key: str, *, delivered: bool, now: float, next_at: float = 0.0,
                     error: str | None = None) -> Row | None:
        """Mark delivered or failed."""
        r = self.rows.get(key)
        if r is None or r.state != "queued":
            return r
        if delivered:
            r = replace(r, state="saved", attempts=r.attempts + 1, lease_until=0.0, delivered_at=now, last_error=None)
        else:
            r = replace(r, attempts=r.attempts + 1, next_at=next_at, last_error=error, lease_until=0.0)
        self.rows[key] = r
        return r

    async def history(self, *, customer_id: str | None, phone: str | None, limit: int) -> list[Row]:
        """Newest first."""
        rows = [r for r in self.rows.values() if r.state != "draft" and _same(r.entry, customer_id, phone)]
        return sorted(rows, key=lambda r: r.entry.saved_at, reverse=True)[:limit]

    async def for_call(self, call_id: str) -> list[Row]:
        """Oldest first."""
        return sorted((r for r in self.rows.values() if r.entry.call_id == call_id), key=lambda r: r.entry.saved_at)


def _same(e: WrapUp, customer_id: str | None, phone: str | None) -> bool:
    if customer_id:
        return e.customer_id == customer_id
    return bool(phone) and e.phone == phone


class SqlJournalStore(JournalStore):
    """Rows in the state store's database (SQLite or PostgreSQL), table `screenpop_journal`."""

    durable = True

    def __init__(self, url: str) -> None:
        from sqlalchemy import JSON, Column, Float, Index, Integer, MetaData, String, Table

        self.url = _async_url(url)
        self.meta = MetaData()
        self.t = Table("screenpop_journal", self.meta,
                       Column("key", String(200), primary_key=True), Column("call_id", String(200), nullable=False),
                       Column("agent", String(64), nullable=False), Column("customer_id", String(200)),
                       Column("phone", String(64)), Column("state", String(16), nullable=False),
                       Column("entry", JSON, nullable=False), Column("saved_at", Float, nullable=False),
                       Column("attempts", Integer, nullable=False, default=0),
                       Column("next_at", Float, nullable=False, default=0.0), Column("last_error", String(300)),
                       Column("lease_until", Float, nullable=False, default=0.0), Column("delivered_at", Float),
                       Index("screenpop_journal_customer", "customer_id", "saved_at"),
                       Index("screenpop_journal_phone", "phone", "saved_at"),
                       Index("screenpop_journal_due", "state", "next_at"),
                       Index("screenpop_journal_call", "call_id"))
        self.engine: Any = None

    async def start(self) -> None:
        """Connect and create the table when it does not exist."""
        self.engine = await open_engine(self.url, self.meta, "the journal in the state store")

    async def close(self) -> None:
        """Dispose of the pool."""
        if self.engine is not None:
            await self.engine.dispose()

    def _row(self, m: Any) -> Row:
        return Row(entry=WrapUp.model_validate(m.entry), state=m.state, attempts=m.attempts, next_at=m.next_at,
                   last_error=m.last_error, lease_until=m.lease_until, delivered_at=m.delivered_at)

    def _values(self, row: Row) -> dict[str, Any]:
        e = row.entry
        return {"key": e.key, "call_id": e.call_id, "agent": e.agent, "customer_id": e.customer_id,
                "phone": e.phone, "state": row.state, "entry": e.model_dump(mode="json"),
                "saved_at": e.saved_at.timestamp(), "attempts": row.attempts, "next_at": row.next_at,
                "last_error": row.last_error, "lease_until": row.lease_until, "delivered_at": row.delivered_at}

    async def _run(self, work: Any) -> Any:
        try:
            async with self.engine.begin() as conn:
                return await work(conn)
        except StoreError:
            raise
        except Exception as err:
            raise StoreError(f"the journal store failed: {type(err).__name__}") from None

    async def get(self, key: str) -> Row | None:
        """The row, or None."""
        from sqlalchemy import select

        async def work(conn: Any) -> Row | None:
            m = (await conn.execute(select(self.t).where(self.t.c.key == key))).first()
            return self._row(m) if m is not None else None

        result: Row | None = await self._run(work)
        return result

    async def put(self, row: Row) -> Row:
        """Insert, or update a row that is not saved yet (a draft never replaces a queued row)."""
        from sqlalchemy import insert, select, update
        from sqlalchemy.exc import IntegrityError

        t = self.t
        allowed = ["draft"] if row.state == "draft" else ["draft", "queued"]

        async def work(conn: Any) -> Row:
            done = await conn.execute(update(t).where(t.c.key == row.entry.key, t.c.state.in_(allowed))
                                      .values(**self._values(row)))
            if done.rowcount == 0:
                m = (await conn.execute(select(t).where(t.c.key == row.entry.key))).first()
                if m is not None:
                    return self._row(m)
                try:
                    async with conn.begin_nested():
                        await conn.execute(insert(t).values(**self._values(row)))
                except IntegrityError:  # inserted meanwhile by another instance
                    m = (await conn.execute(select(t).where(t.c.key == row.entry.key))).first()
                    return self._row(m)
            return row

        result: Row = await self._run(work)
        return result

    async def claim(self, now: float, lease_s: float, limit: int) -> list[Row]:
        """Select due rows, then take each with a compare-and-set on its hold."""
        from sqlalchemy import select, update

        t = self.t

        async def work(conn: Any) -> list[Row]:
            found = (await conn.execute(select(t).where(t.c.state == "queued", t.c.next_at <= now,
                                                        t.c.lease_until <= now)
                                        .order_by(t.c.saved_at).limit(limit))).all()
            taken = []
            for m in found:
                done = await conn.execute(update(t).where(t.c.key == m.key, t.c.state == "queued",
                                                          t.c.lease_until == m.lease_until)
                                          .values(lease_until=now + lease_s))
                if done.rowcount == 1:
                    taken.append(replace(self._row(m), lease_until=now + lease_s))
            return taken

        result: list[Row] = await self._run(work)
        return result

    async def finish(self, key: str, *, delivered: bool, now: float, next_at: float = 0.0,
                     error: str | None = None) -> Row | None:
        """Mark delivered, or count the failure and set the next try."""
        from sqlalchemy import select, update

        t = self.t
        values: dict[str, Any] = {"attempts": t.c.attempts + 1, "lease_until": 0.0}
        if delivered:
            values.update(state="saved", delivered_at=now, last_error=None)
        else:
            values.update(next_at=next_at, last_error=(error or "")[:300])

        async def work(conn: Any) -> Row | None:
            await conn.execute(update(t).where(t.c.key == key, t.c.state == "queued").values(**values))
            m = (await conn.execute(select(t).where(t.c.key == key))).first()
            return self._row(m) if m is not None else None

        result: Row | None = await self._run(work)
        return result

    async def history(self, *, customer_id: str | None, phone: str | None, limit: int) -> list[Row]:
        """Newest first."""
        from sqlalchemy import select

        t = self.t
        if not customer_id and not phone:
            return []
        where = t.c.customer_id == customer_id if customer_id else t.c.phone == phone

        async def work(conn: Any) -> list[Row]:
            rows = (await conn.execute(select(t).where(where, t.c.state != "draft")
                                       .order_by(t.c.saved_at.desc()).limit(limit))).all()
            return [self._row(m) for m in rows]

        result: list[Row] = await self._run(work)
        return result

    async def for_call(self, call_id: str) -> list[Row]:
        """Oldest first."""
        from sqlalchemy import select

        async def work(conn: Any) -> list[Row]:
            rows = (await conn.execute(select(self.t).where(self.t.c.call_id == call_id)
                                       .order_by(self.t.c.saved_at))).all()
            return [self._row(m) for m in rows]

        result: list[Row] = await self._run(work)
        return result


def journal_store_from_url(url: str | None) -> JournalStore:
    """The journal's store on SCREENPOP_STATE_URL (memory when unset); the URL was checked by store_from_url."""
    if not url or url == "memory://":
        return MemoryJournalStore()
    return SqlJournalStore(url)
