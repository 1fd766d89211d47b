"""Wrap-ups: saved first in screenpop's journal (an outbox), then written back, exactly once per call and agent.

    agent ──wrapup──▶ JournalService.save ──▶ JournalStore (queued) ──▶ wrapup.state "queued" to the agent
                                                  │
                      the delivery loop (every instance; a row is held by one at a time)
                                                  ▼
                      Journal.write(entry)  ok ──▶ saved    ──▶ wrapup.state "saved"
                                            fails ──▶ queued, next try after a back-off ──▶ "queued" + error

The back-off doubles from `wrapup.retry_base_s` up to `wrapup.retry_max_s` (each delay drawn between 80 %
and 100 %, so instances do not retry in step). Rows stay in the state store, so a restart carries on where
the last instance stopped. Each entry's `key` is the same for every try of one (call, agent): the journal
connector passes it on (`Idempotency-Key`), and the target keeps one entry per key.

Without a journal connector, a saved wrap-up is `local`: in screenpop's history only. The built-in
`history` section (`HistoryConnector`) reads the same rows: a customer's last calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from connectors.base import Connector, ConnectorError, Journal
from screenpop import protocol
from screenpop.callstore import CallStore, CallStoreError
from screenpop.callstore.machine import CallRecord, Outcome, Wrapped, transition
from screenpop.errors import StoreError
from screenpop.journalstore import DONE, JournalStore, Row, State
from screenpop.models import LookupQuery, WrapUp
from screenpop.outbox import Outbox

log = logging.getLogger("screenpop.journal")

BATCH = 20  # rows taken per pass
LEASE_S = 60.0  # a row is held this long by the instance delivering it


def entry_key(call_id: str, agent: str) -> str:
    """The idempotency key of one agent's wrap-up of one call: the same on every try, every instance."""
    return "sp-" + hashlib.sha256(f"{call_id}\0{agent}".encode()).hexdigest()[:40]


def may_wrap_up(agent: str, record: CallRecord) -> bool:
    """True when `agent` had the call: it rang for them, they answered it, or it was transferred from them."""
    card = record.card
    return agent in record.ringing or agent in (card.answered_by, card.transferred_from)


def public(row: Row) -> dict[str, Any]:
    """A row as the console and the API show it."""
    e = row.entry
    return {"call_id": e.call_id, "agent": e.agent, "agent_name": e.agent_name or e.agent, "state": row.state,
            "attempts": row.attempts, "last_error": row.last_error, "disposition": e.disposition,
            "notes": e.notes, "follow_up": e.follow_up.isoformat() if e.follow_up else None,
            "saved_at": e.saved_at.isoformat(), "customer_id": e.customer_id}


class JournalService:
    """Saves wrap-ups, delivers them through the journal connector, answers the history."""

    def __init__(self, store: JournalStore, calls: CallStore, outbox: Outbox, *, writer: Journal | None,
                 names: Callable[[str], str], dispositions: list[str], retry_base_s: float = 2.0,
                 retry_max_s: float = 300.0, write_timeout_s: float = 10.0, poll_s: float = 1.0,
                 clock: Callable[[], float] = time.time, rng: Callable[[], float] = random.random) -> None:
        self.store, self.calls, self.outbox, self.writer = store, calls, outbox, writer
        self.names, self.dispositions = names, dispositions
        self.retry_base_s, self.retry_max_s = retry_base_s, retry_max_s
        self.write_timeout_s, self.poll_s, self.clock, self.rng = write_timeout_s, poll_s, clock, rng
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0  # writes that succeeded on this instance
        self.failed = 0  # writes that failed on this instance

    async def start(self) -> None:
        """Open the store and the writer, then run the delivery loop."""
        await self.store.start()
        if self.writer is not None:
            await self.writer.start()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="screenpop-journal")

    async def replace_writer(self, writer: Journal | None) -> None:
        """Deliver through `writer` from now on (the journal connector was changed in the admin console):
        the new one is started first, the old one closed after. A write in flight on the old one that fails
        is tried again on the new one, under the same key."""
        if writer is not None:
            await writer.start()
        old, self.writer = self.writer, writer
        self._wake.set()
        if old is not None:
            await old.close()

    async def close(self) -> None:
        """Stop the loop; close the writer and the store."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.writer is not None:
            await self.writer.close()
        await self.store.close()

    def delay(self, attempts: int) -> float:
        """Seconds before try number `attempts + 1`: doubling from retry_base_s, at most retry_max_s,
        between 80 % and 100 % of that."""
        full = min(self.retry_max_s, self.retry_base_s * 2.0 ** max(0, attempts - 1))
        return full * (0.8 + 0.2 * self.rng())

    # -- what agents do ----------------------------------------------------------------------------
    async def _record(self, agent: str, call_id: str) -> CallRecord | None | str:
        try:
            record = await self.calls.get(call_id)
        except CallStoreError as err:
            return f"the call store cannot be reached: {err}"
        if record is not None and not may_wrap_up(agent, record):
            return "this call was not yours"
        return record

    def _entry(self, agent: str, call_id: str, record: CallRecord | None, old: Row | None, **fields: Any) -> WrapUp:
        """The entry, its customer and number from the call's record (or, once the call is gone, from the
        entry stored before)."""
        if record is not None:
            card = record.card
            customer = card.customer
            base: dict[str, Any] = {"customer_id": customer.id if customer else None,
                                    "customer_name": customer.name if customer else None,
                                    "phone": card.caller.e164 or card.caller.raw or None}
        else:
            assert old is not None
            e = old.entry
            base = {"customer_id": e.customer_id, "customer_name": e.customer_name, "phone": e.phone}
        return WrapUp.model_validate({"key": entry_key(call_id, agent), "call_id": call_id, "agent": agent,
                                      "agent_name": self.names(agent), "saved_at": datetime.now(UTC),
                                      **base, **fields})

    async def save(self, agent: str, request: protocol.WrapUpRequest) -> str | None:
        """Store the wrap-up as queued (or local), tell the agent, wake the delivery. None, or why refused
        (the agent is told that too)."""
        call_id = request.call_id
        key = entry_key(call_id, agent)
        refused: str | None = None
        old: Row | None = None
        record: CallRecord | None = None
        try:
            old = await self.store.get(key)
            found = await self._record(agent, call_id)
            if isinstance(found, str):
                refused = found
            elif found is None and old is None:
                refused = "no such call"
            else:
                record = found
        except StoreError as err:
            refused = str(err)
        if refused is None and request.disposition not in self.dispositions:
            refused = f"unknown disposition {request.disposition!r}"
        if refused is None and old is not None and old.state in DONE:
            refused = "this wrap-up is saved already"
        if refused is not None:
            await self._tell(WrapUp(key=key, call_id=call_id, agent=agent, disposition=request.disposition,
                                    notes=request.notes, follow_up=request.follow_up, saved_at=datetime.now(UTC)),
                             "refused", 0, refused)
            return refused
        entry = self._entry(agent, call_id, record, old, notes=request.notes, disposition=request.disposition,
                            follow_up=request.follow_up)
        state: State = "queued" if self.writer is not None else "local"
        try:
            row = await self.store.put(Row(entry=entry, state=state, next_at=self.clock()))
        except StoreError as err:
            await self._tell(entry, "refused", 0, str(err))
            return str(err)
        await self._tell(row.entry, row.state, row.attempts, row.last_error)
        self._wake.set()
        await self._owed_no_more(agent, call_id)
        return None

    async def _owed_no_more(self, agent: str, call_id: str) -> None:
        """The wrap-up is saved: its ended call leaves the agent's snapshot (a new tab shows it no more)."""
        def step(record: CallRecord | None) -> Outcome:
            return transition(call_id, record, Wrapped(agent), time.time())

        try:
            await self.calls.apply(call_id, step)
        except CallStoreError as err:  # the card shows in a new tab until the call expires; nothing is lost
            log.warning("call %s stays in %s's snapshot: %s", call_id, agent, err)

    async def draft(self, agent: str, request: protocol.DraftRequest) -> str | None:
        """Keep the notes typed so far (a transferred call shows them to the next agent)."""
        try:
            old = await self.store.get(entry_key(request.call_id, agent))
            found = await self._record(agent, request.call_id)
            if isinstance(found, str) or (found is None and old is None):
                return found if isinstance(found, str) else "no such call"
            if old is not None and old.state != "draft":
                return None
            entry = self._entry(agent, request.call_id, found, old, notes=request.notes)
            await self.store.put(Row(entry=entry, state="draft"))
        except StoreError as err:
            return str(err)
        return None

    async def for_call(self, agent: str, call_id: str) -> list[dict[str, Any]] | None:
        """Every wrap-up of a call (drafts too), for an agent who has or had it; None when not theirs."""
        found = await self._record(agent, call_id)
        rows = await self.store.for_call(call_id)
        if isinstance(found, str) or (found is None and not any(r.entry.agent == agent for r in rows)):
            return None
        return [public(r) for r in rows]

    async def history(self, customer_id: str | None, phone: str | None, limit: int) -> list[dict[str, Any]]:
        """A customer's last calls, newest first."""
        return [public(r) for r in await self.store.history(customer_id=customer_id, phone=phone, limit=limit)]

    async def _tell(self, entry: WrapUp, state: str, attempts: int, error: str | None) -> None:
        await self.outbox.send([entry.agent], protocol.wrapup_state(entry, state, attempts, error))

    # -- delivery ----------------------------------------------------------------------------------
    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()
            try:
                while await self.deliver_due() == BATCH:
                    pass
            except StoreError as err:
                log.warning("journal delivery skipped: %s", err)
            except Exception:
                log.exception("journal delivery failed")

    async def deliver_due(self) -> int:
        """One pass: take the rows that are due and write each once. Returns how many it took."""
        if self.writer is None:
            return 0
        rows = await self.store.claim(self.clock(), LEASE_S, BATCH)
        if rows:
            await asyncio.gather(*(self._deliver(r) for r in rows))
        return len(rows)

    async def _deliver(self, row: Row) -> None:
        assert self.writer is not None
        error: str | None = None
        try:
            await asyncio.wait_for(self.writer.write(row.entry), self.write_timeout_s)
        except asyncio.CancelledError:  # shutting down: let the next instance try at once, not after the hold
            await self.store.finish(row.entry.key, delivered=False, now=self.clock(), next_at=self.clock(),
                                    error="interrupted by a shutdown")
            raise
        except TimeoutError:
            error = f"no answer within {self.write_timeout_s:g} s"
        except ConnectorError as err:
            error = str(err)[:200] or type(err).__name__
        except Exception as err:  # a plugin's bug must not stop the loop
            log.exception("journal %s failed on %s", self.writer.name, row.entry.key)
            error = type(err).__name__
        now = self.clock()
        if error is None:
            self.delivered += 1
            done = await self.store.finish(row.entry.key, delivered=True, now=now)
        else:
            self.failed += 1
            log.info("wrap-up %s of call %s not delivered (try %d): %s", row.entry.key, row.entry.call_id,
                     row.attempts + 1, error)
            done = await self.store.finish(row.entry.key, delivered=False, now=now,
                                           next_at=now + self.delay(row.attempts + 1), error=error)
        if done is not None:
            await self._tell(done.entry, done.state, done.attempts, done.last_error)


class HistoryConnector(Connector):
    """The built-in `history` section: a customer's last calls from screenpop's own journal."""

    kind: ClassVar[str] = "history"

    def __init__(self, journal: JournalService, limit: int) -> None:
        super().__init__("history", Connector.Options())
        self.journal, self.limit = journal, limit

    async def fetch(self, query: LookupQuery) -> list[Any] | None:
        """The customer's last calls (date, agent, disposition, notes, follow-up), newest first."""
        try:
            rows = await self.journal.history(query.customer_id, query.phone, self.limit)
        except StoreError as err:
            raise ConnectorError(str(err)) from None
        return [{"date": r["saved_at"], "agent": r["agent_name"], "disposition": r["disposition"],
                 "notes": r["notes"], "follow_up": r["follow_up"]} for r in rows] or None

    async def ping(self) -> None:
        """The journal's store answers."""
        try:
            await self.journal.store.history(customer_id="ping", phone=None, limit=1)
        except StoreError as err:
            raise ConnectorError(str(err)) from None
