"""Calls: each event applied to the call's shared record, the effects sent, the lookup run once.

    offered ──▶ ringing ──▶ answered ──▶ ended
       └──────────┴────────────┴──────────▲

The rules of a call (who gets the card, dedup, order, retry or transfer, the tombstone) are the state
machine, `screenpop.callstore.machine`; the call's record lives in the call store, shared by every
instance on it, so any instance may take any event of any call. This registry turns an event into a change
of the record (`CallStore.apply`, atomic per call), then sends what the change says to send.

The first event that carries a valid number starts the call's one lookup, on the instance that applied it:
what the lookup has at hand (an in-process cache) is on the card from the start, so a repeat caller's card
leaves whole; every section that settles later is a change of the record (taken only from the lookup run
that owns it), then a `card.section` to the agents who have the card. The owner renews its lease while
the lookup runs; every instance's sweep (each `sweep_s`) takes over a lookup whose owner stopped renewing,
re-running what is pending if time remains before the card's deadline, and settles as `unavailable`
whatever is still pending at the deadline. A call nobody ends is dropped after `ttl_s`.

The registry knows nothing of telephony protocols: adapters hand it CallEvents. What it sends the agents
is built by `screenpop.protocol`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from screenpop import protocol
from screenpop.auth import Directory
from screenpop.callstore import CallStore, CallStoreError, Effect, Outcome
from screenpop.callstore.machine import (
    CallRecord,
    Change,
    Event,
    Renew,
    Select,
    Settle,
    Sweep,
    new_record,
    settle_at_hand,
    transition,
)
from screenpop.callstore.memory import MemoryCallStore
from screenpop.logs import call_id_var
from screenpop.lookup import CUSTOMER, Emit, Lookup
from screenpop.masking import Masker
from screenpop.models import CallEvent, Card, Customer, EventKind, LookupQuery, Section, SectionStatus
from screenpop.outbox import Outbox
from screenpop.phone import normalize

log = logging.getLogger("screenpop.calls")

SWEEP_LIMIT = 100  # calls looked at per sweep (the most overdue first)


@dataclass(slots=True)
class Run:
    """A lookup this instance runs: its token, its task, and its lease as last stored."""

    token: str
    task: asyncio.Task[None]
    lease_until: float


class CallRegistry:
    """Applies calls' events to the call store and runs the lookups this instance owns."""

    def __init__(self, directory: Directory, lookup: Lookup, outbox: Outbox, *, store: CallStore | None = None,
                 region: str = "US", ttl_s: float = 4 * 3600, max_calls: int = 20_000, instance: str | None = None,
                 lease_s: float = 3.0, sweep_s: float = 1.0, clock: Callable[[], float] = time.time,
                 on_event: Callable[[str], None] | None = None,
                 on_pop: Callable[[float], None] | None = None, masker: Masker | None = None,
                 on_delivered: Callable[[list[str], Card], None] | None = None) -> None:
        self.directory = directory
        self.lookup = lookup
        self.outbox = outbox
        self.store = store if store is not None else MemoryCallStore(ttl_s=ttl_s, max_calls=max_calls, clock=clock)
        self.region = region
        self.instance = instance or secrets.token_hex(6)
        self.lease_s, self.sweep_s, self.clock = lease_s, sweep_s, clock
        self.runs: dict[str, Run] = {}  # the lookups running on this instance, by call
        self.events = 0  # telephony events this instance took (/healthz)
        self._tokens = 0
        self._sweeper: asyncio.Task[None] | None = None
        self.on_event = on_event  # metrics: an event was received (its kind)
        self.on_pop = on_pop  # metrics: seconds from the event to the card handed out
        self.masker = masker  # PII masked by role: one message per group of recipients (screenpop/masking.py)
        self.on_delivered = on_delivered  # the access audit: a card went to these agents

    def _token(self) -> str:
        self._tokens += 1
        return f"{self.instance}/{self._tokens}"

    def _apply(self, call_id: str, change: Change) -> Callable[[CallRecord | None], Outcome]:
        """The step for `change` (a plain transition)."""
        return functools.partial(self._transition, call_id, change)

    def _transition(self, call_id: str, change: Change, record: CallRecord | None) -> Outcome:
        return transition(call_id, record, change, self.clock(), lease_s=self.lease_s,
                          deadline_s=self.lookup.deadline_s)

    # -- events ----------------------------------------------------------------------------------
    async def handle(self, event: CallEvent) -> None:
        """Apply one event. Never raises for a call's content; unknown agents are logged and skipped.
        Raises CallStoreError when the call store cannot be reached (the webhook then answers 503)."""
        token = call_id_var.set(event.call_id)
        try:
            await self._handle(event)
        finally:
            call_id_var.reset(token)

    async def _handle(self, event: CallEvent) -> None:
        t0 = time.perf_counter()
        cid = event.call_id
        self.events += 1
        if self.on_event is not None:
            self.on_event(event.event.value)
        change = Event(event.event, tuple(self._agents(event)),
                       at=event.at.timestamp() if event.at is not None else None, token=self._token())
        rest: list[Callable[[Emit], Awaitable[None]] | None] = [None]

        def step(record: CallRecord | None) -> Outcome:
            created = record is None and event.event is not EventKind.ENDED
            if created:
                record = new_record(self._new_card(event))
            elif (record is not None and record.lookup is None and event.caller and not record.ended
                  and record.card.caller.status != "ok"):
                caller = normalize(event.caller, self.region)
                if caller.status == "ok":  # a later event brought the number (the lookup starts: a change)
                    record.card.caller = caller
                    record.card.sections = self.lookup.initial_sections(caller)
            out = self._transition(cid, change, record)
            out.changed = out.changed or created
            if out.start == "fresh":  # what is at hand goes on the card in this same change
                assert out.record is not None
                begun = self.lookup.begin(out.record.card.caller, out.record.card.called)
                settle_at_hand(cid, out, begun.settled)
                rest[0] = begun.rest
            return out

        out = await self.store.apply(cid, step, self._render)
        if out.start == "fresh" and rest[0] is not None:
            self._run(cid, change.token, rest[0])
        popped = await self._send(out)
        if popped and self.on_pop is not None:
            self.on_pop(time.perf_counter() - t0)
        self._seen(cid, out.record)

    def _agents(self, event: CallEvent) -> list[str]:
        out: list[str] = []
        for address in event.agents:
            agent_id = self.directory.resolve(address)
            if agent_id is None:
                log.warning("call %s: no agent has the address %r", event.call_id, address)
            elif agent_id not in out:
                out.append(agent_id)
        return out

    def _new_card(self, event: CallEvent) -> Card:
        caller = normalize(event.caller, self.region)
        return Card(call_id=event.call_id, caller=caller, called=event.called,
                    sections=self.lookup.initial_sections(caller), started_at=event.at or datetime.now(UTC))

    def _seen(self, call_id: str, record: CallRecord | None) -> None:
        """Stop this instance's lookup of a call that has ended."""
        if record is None or record.card.state == "ended":
            run = self.runs.get(call_id)
            if run is not None:
                run.task.cancel()

    async def _send(self, out: Outcome) -> bool:
        """Send the effects of a stored change, in order, unless the store published them with the change;
        True when a card was handed out."""
        rang = any(e.kind == "ringing" for e in out.effects)
        if self.on_delivered is not None and out.record is not None:
            self._delivered(out.effects, out.record.card)
        if self.store.publishes:
            return rang
        messages = [m for e in out.effects for m in self._outgoing(e, out.record)]  # all built before any wait
        for to, message in messages:
            await self.outbox.send(to, message)
        return rang

    def _delivered(self, effects: list[Effect], card: Card) -> None:
        """Tell the access audit who got the card: when it rang, and when the caller was identified."""
        assert self.on_delivered is not None
        for e in effects:
            if e.kind == "ringing" or (e.kind == "section" and e.detail.name == CUSTOMER and card.customer):
                self.on_delivered(list(e.to), card)

    def _outgoing(self, e: Effect, record: CallRecord | None) -> list[tuple[Sequence[str], protocol.Message]]:
        """The messages of an effect with their recipients: one, or one per role when a connector masks
        fields (a role's recipients never get a value it may not see)."""
        masker = self.masker
        if masker is None or e.kind not in ("ringing", "section") or not masker.active():
            return [(e.to, _message(e, record))]
        out: list[tuple[Sequence[str], protocol.Message]] = []
        for role, to in masker.groups(e.to).items():
            if e.kind == "ringing":
                assert record is not None
                out.append((to, protocol.ringing(masker.card(record.card, role)[0])))
            else:
                out.append((to, protocol.section(e.call_id, masker.section(e.detail, role)[0])))
        return out

    def _render(self, out: Outcome) -> list[str]:
        """The bus texts of a change's effects, for a store that publishes them with the change."""
        texts = []
        for e in out.effects:
            for to, message in self._outgoing(e, out.record):
                if to:
                    texts.append(protocol.envelope(sorted(set(to)), message))
        return texts

    # -- the lookup ------------------------------------------------------------------------------
    def _run(self, call_id: str, token: str, rest: Callable[[Emit], Awaitable[None]]) -> None:
        old = self.runs.get(call_id)
        if old is not None:
            old.task.cancel()
        task = asyncio.get_running_loop().create_task(self._lookup(call_id, token, rest), name=f"lookup-{call_id}")
        task.add_done_callback(functools.partial(self._ran, call_id, token))  # also when cancelled before it ran
        self.runs[call_id] = Run(token, task, self.clock() + self.lease_s)

    def _ran(self, call_id: str, token: str, task: asyncio.Task[None]) -> None:
        run = self.runs.get(call_id)
        if run is not None and run.token == token:
            del self.runs[call_id]

    async def _lookup(self, call_id: str, token: str, rest: Callable[[Emit], Awaitable[None]]) -> None:
        try:  # (a partial, not a closure: fewer objects per call in flight for the garbage collector)
            await rest(functools.partial(self._settle, call_id, token))
        except asyncio.CancelledError:
            raise
        except Exception:  # one call's failure never touches another call
            log.exception("lookup for call %s failed", call_id)

    async def _settle(self, call_id: str, token: str, section: Section) -> None:
        """A section settled: store it on the card and send it to the agents who have the card. When the
        record says this run no longer owns the lookup (taken over, or the call ended), the run stops."""
        try:
            out = await self.store.apply(call_id, functools.partial(self._transition, call_id, Settle(token, section)),
                                         self._render)
        except CallStoreError as err:
            log.warning("section %s of call %s not stored: %s", section.name, call_id, err)
            return
        run = self.runs.get(call_id)
        if out.refused:
            if run is not None and run.token == token:
                run.task.cancel()
            return
        if run is not None and run.token == token:
            run.lease_until = self.clock() + self.lease_s
        await self._send(out)

    def _resume(self, call_id: str, token: str, record: CallRecord) -> None:
        """Run again what is pending of a lookup taken over, within what is left before its deadline."""
        card, left = record.card, max(0.0, record.deadline - self.clock())
        customer = card.section(CUSTOMER)
        if customer is None or customer.status is SectionStatus.PENDING:
            rest: Callable[[Emit], Awaitable[None]] = functools.partial(self.lookup.run, card.caller, card.called,
                                                                         deadline_s=left)
        elif card.customer is None:  # settled as no match or several: nothing to fetch for the rest
            pending = {s.name for s in record.pending()}
            settled = [s for s in self.lookup.unmatched(customer, card.candidates) if s.name in pending]
            rest = functools.partial(_emit_all, settled)
        else:
            pending = {s.name for s in record.pending()}
            query = LookupQuery(phone=card.caller.e164 or "", raw=card.caller.raw, called=card.called,
                                customer_id=card.customer.id)
            rest = functools.partial(self.lookup.run_sections, query, deadline=time.monotonic() + left,
                                     sources=[s for s in self.lookup.sections if s.name in pending])
        log.info("call %s: taking over its lookup (%d section(s) pending, %.1f s left)", call_id,
                 len(record.pending()), left)
        self._run(call_id, token, rest)

    # -- agent requests --------------------------------------------------------------------------
    async def select(self, agent_id: str, call_id: str, customer_id: str, found: Customer | None = None) -> str | None:
        """The agent picked one of several matching customers (or `found` one by a search); fill the sections
        for that one, on this instance whichever instance holds the agent's socket. Returns None when done,
        else why refused."""
        token = self._token()
        out = await self.store.apply(call_id, self._apply(call_id, Select(agent_id, customer_id, token, found)),
                                     self._render)
        if out.record is None:
            return "no such call for this agent"
        if out.refused:
            return out.refused
        await self._send(out)
        card = out.record.card
        query = LookupQuery(phone=card.caller.e164 or "", raw=card.caller.raw, called=card.called,
                            customer_id=customer_id)
        self._run(call_id, token, functools.partial(self.lookup.run_sections, query))
        return None

    def lookups_running(self) -> bool:
        """True while any call's lookup is running on this instance."""
        return bool(self.runs)

    # -- housekeeping ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the sweep (each `sweep_s`): leases, takeovers, deadlines, calls nobody ended."""
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever(), name="screenpop-sweep")

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_s)
            try:
                await self.sweep()
            except CallStoreError as err:
                log.warning("sweep skipped: %s", err)
            except Exception:
                log.exception("sweep failed")

    async def sweep(self, now: float | None = None) -> int:
        """Renew the leases of this instance's lookups that run long; take over or close the lookups that
        are due (a stopped owner, or the deadline); drop calls nobody ended in `ttl_s`. Returns how many
        calls it changed (taken over, closed or dropped)."""
        now = self.clock() if now is None else now
        for call_id, run in list(self.runs.items()):
            if run.lease_until - now < 2 * self.sweep_s:
                out = await self.store.apply(call_id, functools.partial(
                    _at, call_id, Renew(run.token), now, self.lease_s, self.lookup.deadline_s), self._render)
                if out.refused:
                    run.task.cancel()
                else:
                    run.lease_until = now + self.lease_s
        changed = 0
        for call_id in await self.store.due(now, SWEEP_LIMIT):
            token = self._token()
            out = await self.store.apply(call_id, functools.partial(
                _at, call_id, Sweep(token), now, self.lease_s, self.lookup.deadline_s), self._render)
            if not out.changed:
                continue
            changed += 1
            await self._send(out)
            if out.start == "resume" and out.record is not None:
                self._resume(call_id, token, out.record)
            elif (late := self.runs.get(call_id)) is not None:
                late.task.cancel()  # settled at the deadline: the run was late
        effects = await self.store.expire(now)
        for e in effects:
            await self.outbox.send(e.to, _message(e, None))
        return changed + sum(1 for e in effects if e.kind == "ended")

    async def close(self) -> None:
        """Cancel the sweep and every running lookup."""
        tasks = [r.task for r in self.runs.values()] + ([self._sweeper] if self._sweeper else [])
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _at(call_id: str, change: Change, now: float, lease_s: float, deadline_s: float,
        record: CallRecord | None) -> Outcome:
    """A transition at a given time (the sweep's)."""
    return transition(call_id, record, change, now, lease_s=lease_s, deadline_s=deadline_s)


async def _emit_all(sections: list[Section], emit: Emit) -> None:
    for s in sections:
        await emit(s)


def _message(e: Effect, record: CallRecord | None) -> protocol.Message:
    """The agent message of an effect (`ringing` sends the card as stored)."""
    if e.kind == "ringing":
        assert record is not None
        return protocol.ringing(record.card)
    if e.kind == "section":
        return protocol.section(e.call_id, e.detail)
    if e.kind == "answered":
        return protocol.answered(e.call_id, e.detail)
    if e.kind == "withdrawn":
        return protocol.withdrawn(e.call_id, e.detail)
    return protocol.ended(e.call_id, e.detail)
