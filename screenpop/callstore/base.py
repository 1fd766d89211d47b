"""The call-store seam: where every call's state lives, shared by the instances that use one store.

A call is one `CallRecord` (screenpop.callstore.machine). The store applies a step, a function from the
record as stored (None for a call not seen yet) to an `Outcome`, atomically per call: two steps of one
call applied at once, on one instance or two, give the result of one after the other. The step is the
state machine (`machine.transition`, wrapped by the call registry), written once for every backend.

Besides the records the store keeps two indexes, so that the periodic work is cheap: per agent, the calls
whose card the agent has, or whose wrap-up the agent owes (`active`, the agent's snapshot); and the calls
whose lookup has pending sections, by when they are due for a sweep (`due`). Every record and index lives
at most `ttl_s` after its last change; an ended call stays as a tombstone that long, so a late event for it
is ignored.

A backend is chosen by URL scheme (`memory://`, `redis://`, `rediss://`), imported lazily.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable

from screenpop.callstore.machine import CallRecord, Effect, Outcome
from screenpop.errors import CallStoreError as CallStoreError  # re-exported: the errors are defined in one tree
from screenpop.models import Card

Step = Callable[[CallRecord | None], Outcome]
Render = Callable[[Outcome], list[str]]
"""The bus texts (agent message envelopes) of a stored change, for a store that publishes them itself."""


class CallStore(abc.ABC):
    """Every call's state, with the per-agent and due-lookup indexes."""

    ttl_s: float
    publishes: bool = False
    """True when `apply` publishes a change's messages itself, in the same atomic step as the write (so every
    instance receives one call's messages in the order of its changes); else the caller sends them."""

    route: str | None = None
    """The bus channel of this instance's own messages when the store publishes each change's messages only
    to the instances where a recipient is `present` (the hub subscribes to it besides the agent channel);
    None: every instance reads every message."""

    async def present(self, agent_ids: Iterable[str]) -> None:
        """With a `route`: from now on, and for a while (the backend's presence time, which the caller renews
        well within), route these agents' messages to this instance. Called before a socket's snapshot is
        read, so every change stored later reaches the socket and every change stored earlier is in the
        snapshot. Raises CallStoreError when the store cannot be reached. Without a route: does nothing."""
        return None

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the store. Called once before anything else. Raises CallStoreError if it cannot."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the store. Idempotent; must not raise."""

    @abc.abstractmethod
    async def apply(self, call_id: str, step: Step, render: Render | None = None) -> Outcome:
        """Run `step` on the call's record and store what it returns, atomically for this call.

        `step` gets the stored record (None for a call not seen yet), may change it in place, and must
        depend on nothing else: a backend may run it more than once (the outcome of the run that was
        stored is returned). Nothing is written when `outcome.changed` is false. A write refreshes the
        record's TTL and brings the indexes up to date (the agents of `record.holders()`, `record.due()`).
        When `publishes` is true and `render` is given, the texts `render(outcome)` returns for the stored
        outcome are published with the write, atomically and in order; otherwise `render` is not called.
        Raises CallStoreError when the store cannot be reached (nothing is then applied)."""

    @abc.abstractmethod
    async def get(self, call_id: str) -> CallRecord | None:
        """The call's record as stored (a copy: changing it changes nothing), or None."""

    @abc.abstractmethod
    async def active(self, agent_id: str) -> list[Card]:
        """The cards the agent has now (calls not ended whose `ringing` names the agent) and those of ended
        calls whose wrap-up the agent owes (`wrapup`), in the order the agent got them. Raises CallStoreError
        when the store cannot be reached."""

    @abc.abstractmethod
    async def due(self, now: float, limit: int) -> list[str]:
        """Up to `limit` call ids whose `record.due()` is at or before `now` (unix seconds), most overdue
        first. Raises CallStoreError when the store cannot be reached."""

    async def expire(self, now: float) -> list[Effect]:
        """Drop the calls nobody changed for `ttl_s` and return the effects of closing them (their agents
        are told). A backend whose keys expire by themselves returns [] (the default): the agents' next
        snapshot no longer has them."""
        return []
