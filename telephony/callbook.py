"""The book of calls a CTI adapter keeps: the caller's leg and the agent each leg rings, per call.

Bounded (calls and legs per call), dropped when a call ends, kept across reconnects, and turned into
CallEvents with repeats removed (AMI repeats events; a resync after a reconnect replays what it finds).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field

from screenpop.models import CallEvent, EventKind


@dataclass
class Leg:
    """One dialled leg of a call: the agent it rings (None for plumbing such as Local channels)."""

    agent: str | None
    state: str  # ringing | answered | other | gone
    seen: int


@dataclass
class Call:
    """What an adapter remembers of one call."""

    call_id: str
    caller: str = ""
    called: str | None = None
    caller_leg: str | None = None
    offered: bool = False
    legs: dict[str, Leg] = field(default_factory=dict)
    seen: int = 0


@dataclass(frozen=True)
class LiveLeg:
    """One channel the PBX lists when asked after a reconnect."""

    call_id: str
    leg_id: str
    is_caller: bool
    agent: str | None = None
    up: bool = False
    caller: str = ""
    called: str | None = None


class CallBook:
    """Calls in progress as a protocol sees them, turned into CallEvents. Each step is reported once:
    a leg rings once, is answered once, stops once; a call is offered once and ends once (a late event
    for an ended call is ignored). At most `max_calls` calls and `max_legs` legs a call are kept."""

    def __init__(self, max_calls: int = 5000, max_legs: int = 64, logger: logging.Logger | None = None) -> None:
        self.max_calls, self.max_legs = max_calls, max_legs
        self.calls: OrderedDict[str, Call] = OrderedDict()
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._legs: dict[str, str] = {}  # leg id (the caller's too) -> call id
        self.tick = 0
        self.log = logger or logging.getLogger("screenpop.telephony")

    def touch(self) -> int:
        """Count one packet received; returns the count (a resync compares against it)."""
        self.tick += 1
        return self.tick

    def call_of(self, leg_id: str) -> str | None:
        return self._legs.get(leg_id)

    def is_caller_leg(self, leg_id: str) -> bool:
        call = self.calls.get(self._legs.get(leg_id, ""))
        return call is not None and call.caller_leg == leg_id

    def _event(self, call: Call, kind: EventKind, agent: str | None = None) -> CallEvent:
        return CallEvent(call_id=call.call_id[:200], event=kind, caller=call.caller[:100],
                         called=call.called[:100] if call.called else None, agents=[agent] if agent else [])

    def _get(self, call_id: str) -> Call | None:
        if not call_id or call_id in self._ended:
            return None
        call = self.calls.get(call_id)
        if call is None:
            while len(self.calls) >= self.max_calls:
                oldest = next(iter(self.calls))
                self.log.warning("more than %d calls in progress; forgetting the oldest, %s", self.max_calls, oldest)
                self._forget(oldest)
            call = self.calls[call_id] = Call(call_id)
        call.seen = self.tick
        self.calls.move_to_end(call_id)
        return call

    def _forget(self, call_id: str) -> Call | None:
        call = self.calls.pop(call_id, None)
        if call is not None:
            for leg_id in (*call.legs, call.caller_leg):
                if leg_id is not None and self._legs.get(leg_id) == call_id:
                    del self._legs[leg_id]
        return call

    def offered(self, call_id: str, caller: str = "", called: str | None = None,
                caller_leg: str | None = None) -> list[CallEvent]:
        """The call reached the PBX; what is known of it is kept."""
        call = self._get(call_id)
        if call is None:
            return []
        call.caller = call.caller or caller
        call.called = call.called or called
        if caller_leg and call.caller_leg is None:
            call.caller_leg = caller_leg
            self._legs[caller_leg] = call_id
        if call.offered:
            return []
        call.offered = True
        return [self._event(call, EventKind.OFFERED)]

    def ringing(self, call_id: str, leg_id: str, agent: str | None, *, caller: str = "",
                caller_leg: str | None = None) -> list[CallEvent]:
        """A new leg of the call rings `agent` (None: a leg that is no agent's, kept to recognise it)."""
        if not leg_id or leg_id in self._legs:
            return []
        out = self.offered(call_id, caller, None, caller_leg)
        call = self.calls.get(call_id)
        if call is None or call_id in self._ended:
            return out
        if len(call.legs) >= self.max_legs:
            oldest = next(iter(call.legs))
            del call.legs[oldest]
            self._legs.pop(oldest, None)
        call.legs[leg_id] = Leg(agent, "ringing" if agent else "other", self.tick)
        self._legs[leg_id] = call_id
        return out + ([self._event(call, EventKind.RINGING, agent)] if agent else [])

    def _leg(self, leg_id: str) -> tuple[Call, Leg] | tuple[None, None]:
        call = self.calls.get(self._legs.get(leg_id, ""))
        leg = call.legs.get(leg_id) if call else None
        if call is None or leg is None:
            return None, None
        call.seen = leg.seen = self.tick
        return call, leg

    def answered(self, leg_id: str, *, call_id: str | None = None, agent: str | None = None) -> list[CallEvent]:
        """The leg was picked up. An unknown leg with `call_id` and `agent` rings first (missed while away)."""
        out: list[CallEvent] = []
        if leg_id not in self._legs and call_id and agent:
            out = self.ringing(call_id, leg_id, agent)
        call, leg = self._leg(leg_id)
        if call is None or leg is None or leg.state != "ringing":
            return out
        leg.state = "answered"
        return out + [self._event(call, EventKind.ANSWERED, leg.agent)]

    def stopped(self, leg_id: str) -> list[CallEvent]:
        """The leg stopped ringing or hung up: withdrawn when it was still ringing."""
        call, leg = self._leg(leg_id)
        if call is None or leg is None:
            return []
        was, leg.state = leg.state, "gone"
        return [self._event(call, EventKind.WITHDRAWN, leg.agent)] if was == "ringing" else []

    def ended(self, call_id: str) -> list[CallEvent]:
        """The call is over; its state is dropped and later events about it are ignored."""
        call = self._forget(call_id)
        if call is None:
            return []
        self._ended[call_id] = None
        while len(self._ended) > 2 * self.max_calls:
            self._ended.popitem(last=False)
        return [self._event(call, EventKind.ENDED)]

    def reconcile(self, mark: int, live: list[LiveLeg]) -> list[CallEvent]:
        """Align the book with the channels the PBX lists after a reconnect (asked at tick `mark`): calls
        whose caller is gone end, ringing legs that are gone stop or that are up are answered, and calls
        and legs that started while away are reported. Anything seen after `mark` is left alone."""
        out: list[CallEvent] = []
        by_call: dict[str, dict[str, LiveLeg]] = {}
        for item in live:
            by_call.setdefault(item.call_id, {})[item.leg_id] = item
        for call in list(self.calls.values()):
            if call.seen > mark:
                continue
            legs = by_call.get(call.call_id, {})
            if not (call.caller_leg in legs if call.caller_leg else legs):
                out += self.ended(call.call_id)
                continue
            for leg_id, leg in list(call.legs.items()):
                if leg.seen <= mark and leg.state == "ringing":
                    now = legs.get(leg_id)
                    out += self.stopped(leg_id) if now is None else self.answered(leg_id) if now.up else []
        for call_id, legs in by_call.items():
            for item in sorted(legs.values(), key=lambda i: not i.is_caller):
                if item.is_caller:
                    out += self.offered(call_id, item.caller, item.called, item.leg_id)
                elif item.agent and item.leg_id not in self._legs:
                    out += self.ringing(call_id, item.leg_id, item.agent, caller=item.caller)
                    out += self.answered(item.leg_id) if item.up else []
        return out
