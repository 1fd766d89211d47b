"""Calls: the state of each call, and who gets its card.

    offered ──▶ ringing ──▶ answered ──▶ ended
       └──────────┴────────────┴──────────▲

The first event that carries a valid number starts the call's one lookup, shared by every agent the
call rings for; what the lookup has at hand (an in-process cache) is on the card from the start, so a
repeat caller's card leaves whole. `ringing` gives the card so far to each newly ringing agent; every
section that settles later goes to the agents it rings for; `answered` keeps the card with the agent
who picked up and withdraws it from the others; `ended` closes it for everyone. Repeated events change nothing, and an
event for a call that has ended is ignored (so an `ended` before `ringing` means no late pop). A call
nobody ends is dropped after `ttl_s`; at most `max_calls` are kept.

The registry knows nothing of telephony protocols: adapters hand it CallEvents. What it sends the
agents is built by `screenpop.protocol`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from screenpop import protocol
from screenpop.auth import Directory
from screenpop.logs import call_id_var
from screenpop.lookup import CUSTOMER_VIEW, Emit, Lookup
from screenpop.models import CUSTOMER_SECTION, CallEvent, Card, EventKind, LookupQuery, Section, SectionStatus
from screenpop.outbox import Outbox
from screenpop.phone import normalize

log = logging.getLogger("screenpop.calls")


@dataclass
class Call:
    """One call in progress."""

    card: Card
    ringing: set[str] = field(default_factory=set)  # agents who currently get this card
    lookup: asyncio.Task[None] | None = None
    touched: float = 0.0


class CallRegistry:
    """Every call in progress on this instance."""

    def __init__(self, directory: Directory, lookup: Lookup, outbox: Outbox, *, region: str = "US",
                 ttl_s: float = 4 * 3600, max_calls: int = 20_000,
                 on_event: Callable[[str], None] | None = None,
                 on_pop: Callable[[float], None] | None = None) -> None:
        self.directory = directory
        self.lookup = lookup
        self.outbox = outbox
        self.region = region
        self.ttl_s = ttl_s
        self.max_calls = max_calls
        self.calls: OrderedDict[str, Call] = OrderedDict()
        self._ended: OrderedDict[str, float] = OrderedDict()
        self._sweeper: asyncio.Task[None] | None = None
        self.on_event = on_event  # metrics: an event was received (its kind)
        self.on_pop = on_pop  # metrics: seconds from the event to the card handed out

    # -- events ----------------------------------------------------------------------------------
    async def handle(self, event: CallEvent) -> None:
        """Apply one event. Never raises for a call's content; unknown agents are logged and skipped."""
        token = call_id_var.set(event.call_id)
        try:
            await self._handle(event)
        finally:
            call_id_var.reset(token)

    async def _handle(self, event: CallEvent) -> None:
        t0 = time.perf_counter()
        cid = event.call_id
        if self.on_event is not None:
            self.on_event(event.event.value)
        if cid in self._ended:
            log.debug("call %s already ended; %s ignored", cid, event.event)
            return
        call = self.calls.get(cid)
        if event.event is EventKind.ENDED:
            await self._end(cid, "the call ended")
            return
        if call is None:
            call = await self._create(event)
        elif call.lookup is None and event.caller and call.card.caller.status != "ok":
            caller = normalize(event.caller, self.region)
            if caller.status == "ok":  # a later event brought the number
                call.card.caller = caller
                call.card.sections = self.lookup.initial_sections(caller)
                self._start_lookup(call)
        call.touched = time.monotonic()
        self.calls.move_to_end(cid)
        agents = self._agents(event)
        if event.event is EventKind.RINGING:
            if await self._ring(call, agents) and self.on_pop is not None:
                self.on_pop(time.perf_counter() - t0)
        elif event.event is EventKind.ANSWERED:
            await self._answer(call, agents[0] if agents else None)
        elif event.event is EventKind.WITHDRAWN:
            await self._withdraw(call, agents, "stopped ringing")

    def _agents(self, event: CallEvent) -> list[str]:
        out: list[str] = []
        for address in event.agents:
            agent_id = self.directory.resolve(address)
            if agent_id is None:
                log.warning("call %s: no agent has the address %r", event.call_id, address)
            elif agent_id not in out:
                out.append(agent_id)
        return out

    async def _create(self, event: CallEvent) -> Call:
        while len(self.calls) >= self.max_calls:
            oldest = next(iter(self.calls))
            log.warning("too many calls in progress; dropping the oldest, %s", oldest)
            await self._end(oldest, "dropped: too many calls in progress")
        caller = normalize(event.caller, self.region)
        card = Card(call_id=event.call_id, caller=caller, called=event.called,
                    sections=self.lookup.initial_sections(caller),
                    started_at=event.at or datetime.now(UTC))
        call = Call(card=card, touched=time.monotonic())
        self.calls[event.call_id] = call
        if caller.status == "ok":
            self._start_lookup(call)
        return call

    def _start_lookup(self, call: Call) -> None:
        """Put what the lookup has at hand on the card now; fetch the rest in a task."""
        card = call.card
        begun = self.lookup.begin(card.caller, card.called)
        for section in begun.settled:
            protocol.apply_section(card, section)
        if begun.rest is not None:
            call.lookup = asyncio.get_running_loop().create_task(self._run_lookup(call, begun.rest),
                                                                 name=f"lookup-{card.call_id}")

    async def _run_lookup(self, call: Call, rest: Callable[[Emit], Awaitable[None]]) -> None:
        try:  # (a partial, not a closure: fewer objects per call in flight for the garbage collector)
            await rest(functools.partial(self._settle, call))
        except asyncio.CancelledError:
            raise
        except Exception:  # one call's failure never touches another call
            log.exception("lookup for call %s failed", call.card.call_id)

    async def _ring(self, call: Call, agents: list[str]) -> bool:
        """Give the card to agents it does not ring for yet; True when someone new got it."""
        new = [a for a in agents if a not in call.ringing]
        if not new:
            return False
        card = call.card
        if card.state == "answered" and card.answered_by:  # rings again elsewhere: a transfer, same card
            card.transferred_from = card.answered_by
        card.state = "ringing"
        call.ringing.update(new)
        await self.outbox.send(new, protocol.ringing(card))
        return True

    async def _answer(self, call: Call, agent: str | None) -> None:
        card = call.card
        if card.state == "answered" and card.answered_by == agent:
            return
        if agent is not None and agent not in call.ringing:
            await self._ring(call, [agent])
        if card.state == "answered" and card.answered_by and agent and card.answered_by != agent:
            card.transferred_from = card.answered_by  # answered elsewhere without ringing first
        card.state, card.answered_by = "answered", agent
        others = call.ringing - {agent} if agent else set()
        keep = call.ringing - others
        await self.outbox.send(keep, protocol.answered(card.call_id, agent))
        if card.transferred_from in others:
            await self._withdraw(call, [card.transferred_from], f"transferred to {agent}")
        await self._withdraw(call, list(others), "answered by another agent")
        call.ringing = keep

    async def _withdraw(self, call: Call, agents: list[str], reason: str) -> None:
        """Take the card away from `agents` (never from the agent who has the call answered)."""
        gone = [a for a in agents if a in call.ringing and not (call.card.state == "answered"
                                                                  and a == call.card.answered_by)]
        if not gone:
            return
        call.ringing.difference_update(gone)
        await self.outbox.send(gone, protocol.withdrawn(call.card.call_id, reason))

    async def _end(self, call_id: str, reason: str) -> None:
        call = self.calls.pop(call_id, None)
        self._ended[call_id] = time.monotonic()
        self._ended.move_to_end(call_id)
        while len(self._ended) > self.max_calls:
            self._ended.popitem(last=False)
        if call is None:
            return
        call.card.state = "ended"
        if call.lookup and not call.lookup.done():
            call.lookup.cancel()
        await self.outbox.send(call.ringing, protocol.ended(call_id, reason))

    async def _settle(self, call: Call, section: Section) -> None:
        """A section settled: put it on the card and send it to the agents who have the card."""
        protocol.apply_section(call.card, section)
        await self.outbox.send(call.ringing, protocol.section(call.card.call_id, section))

    # -- agent requests --------------------------------------------------------------------------
    async def select(self, agent_id: str, call_id: str, customer_id: str) -> str | None:
        """The agent picked one of several matching customers; fill the sections for that one.
        Returns None when done, else why it was refused."""
        call = self.calls.get(call_id)
        if call is None or agent_id not in call.ringing:
            return "no such call for this agent"
        chosen = next((c for c in call.card.candidates if c.id == customer_id), None)
        if chosen is None:
            return "that customer is not among the candidates"
        if call.lookup and not call.lookup.done():
            return "the lookup is still running"
        card = call.card
        customer = card.section(CUSTOMER_SECTION)
        data = {"match": "selected", "customer": chosen.model_dump(mode="json"),
                "candidates": [c.model_dump(mode="json") for c in card.candidates]}
        await self._settle(call, Section(name=CUSTOMER_SECTION, title="Customer", status=SectionStatus.OK, data=data,
                                         source=customer.source if customer else "", view=CUSTOMER_VIEW))
        for s in card.sections[1:]:
            await self._settle(call, s.model_copy(update={"status": SectionStatus.PENDING, "data": None,
                                                          "reason": None, "latency_ms": None}))
        query = LookupQuery(phone=card.caller.e164 or "", raw=card.caller.raw, called=card.called,
                            customer_id=chosen.id)
        call.lookup = asyncio.get_running_loop().create_task(
            self.lookup.run_sections(query, functools.partial(self._settle, call)))
        return None

    def lookups_running(self) -> bool:
        """True while any call's lookup is still running."""
        return any(c.lookup is not None and not c.lookup.done() for c in self.calls.values())

    # -- housekeeping ----------------------------------------------------------------------------
    def start(self, every_s: float = 30.0) -> None:
        """Start dropping calls nobody ended."""
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever(every_s))

    async def _sweep_forever(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            await self.sweep()

    async def sweep(self, now: float | None = None) -> int:
        """Drop calls untouched for ttl_s and forget old tombstones; returns how many calls it dropped."""
        now = time.monotonic() if now is None else now
        stale = [cid for cid, c in self.calls.items() if now - c.touched > self.ttl_s]
        for cid in stale:
            await self._end(cid, "dropped: no end reported in time")
        for cid in [cid for cid, t in self._ended.items() if now - t > self.ttl_s]:
            del self._ended[cid]
        return len(stale)

    async def close(self) -> None:
        """Cancel the sweeper and every running lookup."""
        tasks = [c.lookup for c in self.calls.values() if c.lookup] + ([self._sweeper] if self._sweeper else [])
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
