"""The in-process call store (`memory://`): one instance, the default. A real backend, not a mock.

`apply` runs the step and stores its record with no `await` in between, so on one event loop each call's
transitions already happen one at a time: the loop is the per-call lock. Records are held as objects (no
encoding: the one-instance hot path pays nothing for the seam); `get` hands out a copy.

Bounds: at most `max_calls` calls in progress (past it the oldest is closed: its agents get `call.ended`,
the effects are returned with the outcome of the step that needed the room) and as many tombstones; a
call untouched for `ttl_s` is closed by `expire`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from screenpop.callstore.base import CallStore, Render, Step
from screenpop.callstore.machine import CallRecord, Drop, Effect, Outcome, transition
from screenpop.models import Card

TOO_MANY = "dropped: too many calls in progress"
NO_END = "dropped: no end reported in time"


class MemoryCallStore(CallStore):
    """Calls in a dict; `clock` (unix seconds) is injectable for tests."""

    def __init__(self, *, ttl_s: float = 4 * 3600, max_calls: int = 20_000,
                 clock: Callable[[], float] = time.time) -> None:
        self.ttl_s, self.max_calls, self.clock = ttl_s, max_calls, clock
        self._live: OrderedDict[str, tuple[CallRecord, float]] = OrderedDict()  # call -> record, last change
        self._ended: OrderedDict[str, tuple[CallRecord, float]] = OrderedDict()
        self._agents: dict[str, dict[str, float]] = {}  # agent -> call -> when the agent got the card
        self._due: dict[str, float] = {}  # call -> when its lookup is due for a sweep

    async def connect(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close."""

    async def apply(self, call_id: str, step: Step, render: Render | None = None) -> Outcome:
        """See `CallStore.apply`: the step runs once, and its record is stored before anything else runs.
        It publishes nothing: the caller sends the messages (one process: nothing runs in between)."""
        held = self._live.get(call_id) or self._ended.get(call_id)
        old = held[0] if held is not None else None
        before = old.holders() if old is not None else []
        out = step(old)
        if not out.changed or out.record is None:
            return out
        extra = self._store(call_id, out.record, before, self.clock())
        if extra:
            out.effects.extend(extra)
        return out

    def _store(self, call_id: str, rec: CallRecord, before: list[str], now: float) -> list[Effect]:
        extra: list[Effect] = []
        if rec.card.state == "ended":
            self._live.pop(call_id, None)
            self._ended[call_id] = (rec, now)
            self._ended.move_to_end(call_id)
            while len(self._ended) > self.max_calls:
                self._forget(*self._ended.popitem(last=False))
        else:
            if call_id not in self._live:
                while len(self._live) >= self.max_calls:
                    extra += self._drop(next(iter(self._live)), TOO_MANY, now)
            self._live[call_id] = (rec, now)
            self._live.move_to_end(call_id)
        holders = rec.holders()
        self._unindex(call_id, [a for a in before if a not in holders])
        for agent in holders:
            self._agents.setdefault(agent, {}).setdefault(call_id, now)
        due = rec.due()
        if due is None:
            self._due.pop(call_id, None)
        else:
            self._due[call_id] = due
        return extra

    def _unindex(self, call_id: str, agents: list[str]) -> None:
        for agent in agents:
            calls = self._agents.get(agent)
            if calls is not None:
                calls.pop(call_id, None)
                if not calls:
                    del self._agents[agent]

    def _forget(self, call_id: str, held: tuple[CallRecord, float]) -> None:
        """A tombstone is gone: so is its place in the index of an agent who owed its wrap-up."""
        self._unindex(call_id, held[0].holders())

    def _drop(self, call_id: str, reason: str, now: float) -> list[Effect]:
        rec, _ = self._live[call_id]
        before = rec.holders()
        out = transition(call_id, rec, Drop(reason), now)
        return [*out.effects, *self._store(call_id, rec, before, now)]

    async def get(self, call_id: str) -> CallRecord | None:
        """See `CallStore.get`."""
        held = self._live.get(call_id) or self._ended.get(call_id)
        return None if held is None else CallRecord.from_json(held[0].to_json())

    async def active(self, agent_id: str) -> list[Card]:
        """See `CallStore.active`."""
        calls = self._agents.get(agent_id, {})
        order = sorted(calls, key=calls.__getitem__)
        held = ((self._live.get(c) or self._ended.get(c)) for c in order)
        return [h[0].card for h in held if h is not None]

    async def due(self, now: float, limit: int) -> list[str]:
        """See `CallStore.due`."""
        return sorted((c for c, t in self._due.items() if t <= now), key=self._due.__getitem__)[:limit]

    async def expire(self, now: float) -> list[Effect]:
        """See `CallStore.expire`: close live calls untouched for ttl_s, forget tombstones as old."""
        effects: list[Effect] = []
        for call_id in [c for c, (_, t) in self._live.items() if now - t > self.ttl_s]:
            effects += self._drop(call_id, NO_END, now)
        for call_id in [c for c, (_, t) in self._ended.items() if now - t > self.ttl_s]:
            self._forget(call_id, self._ended.pop(call_id))
        return effects

    def __len__(self) -> int:
        """Calls in progress."""
        return len(self._live)
