"""The call's state machine: one record per call, and the one function that changes it.

    offered ──▶ ringing ──▶ answered ──▶ ended
       └──────────┴────────────┴──────────▲

`transition(call_id, record, change, now)` is a plain function (no I/O, no clock, no randomness): it
returns the record after the change and the effects to send the agents. Every call store applies it,
atomically per call (`CallStore.apply`), so a call's transitions are the same on one instance or on many.
It changes the record it is given in place (a store hands it a record of its own: decoded from Redis, or
held under the call's turn in memory) and never changes it when the outcome says `changed=False`.

Rules, cluster-wide since the record is shared:
- an event carrying `at` that was applied already (same kind, agents and `at`) changes nothing; so does an
  event older than the latest `at` applied (`ended` excepted: a call is over even if the news is late);
- `ringing` gives the card to the agents who do not have it; after `answered`, a `ringing` that names the
  agent who answered is a retry of the ring (nothing changes), one that does not is a transfer;
- `answered` keeps the card with that agent and withdraws it from the others; `withdrawn` takes it from
  agents who are not the one who answered; `ended` closes it for everyone and stays as a tombstone: any
  later change is ignored, but for `Wrapped`;
- the agent who has the call answered when it ends owes its wrap-up (`wrapup`): the call stays in that
  agent's index, and so in their snapshot (a new tab, another browser), until `Wrapped` says the wrap-up
  is saved, or the tombstone expires;
- one lookup per call: the change that starts it names its `token` (the instance and the run), and only
  sections settled under the record's current token are taken. Its owner holds a lease (`lease_until`),
  renewed by each settled section and by `Renew`; a `Sweep` after the lease gives the lookup to a new
  token (`start="resume"`), and after the `deadline` settles every pending section as `unavailable`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import TypeAdapter

from screenpop import protocol
from screenpop.models import CUSTOMER_SECTION, Caller, Card, Customer, EventKind, Section, SectionStatus

MAX_SEEN = 32  # keys of applied events kept for dedup (those carrying `at`)
STOPPED = "the instance looking it up stopped"

EffectKind = Literal["ringing", "section", "answered", "withdrawn", "ended"]


@dataclass(slots=True)
class CallRecord:
    """One call's shared state."""

    card: Card
    ringing: list[str] = field(default_factory=list)  # agents who have the card now, in the order they got it
    last_at: float | None = None  # the latest `at` (unix seconds) of an applied event
    seen: list[str] = field(default_factory=list)  # keys of the last MAX_SEEN applied events with an `at`
    lookup: str | None = None  # the token of the lookup run whose sections are taken; None: none started
    lease_until: float = 0.0  # the lookup's owner holds it until then (unix seconds)
    deadline: float = 0.0  # every section is settled by then (unix seconds)
    wrapup: list[str] = field(default_factory=list)  # after `ended`: the agent who owes its wrap-up (or none)

    @property
    def ended(self) -> bool:
        return self.card.state == "ended"

    def holders(self) -> list[str]:
        """The agents whose index holds the call: those who have the card, then one who owes its wrap-up."""
        return self.ringing + [a for a in self.wrapup if a not in self.ringing] if self.wrapup else self.ringing

    def pending(self) -> list[Section]:
        """The sections still pending (none once the call ended)."""
        if self.card.state == "ended":
            return []
        return [s for s in self.card.sections if s.status is SectionStatus.PENDING]

    def due(self) -> float | None:
        """When a sweep must look at this call (its lookup's lease or deadline), or None: nothing pending."""
        if self.lookup is None or self.card.state == "ended":
            return None
        for s in self.card.sections:  # (a loop, not pending(): this runs on every change)
            if s.status is SectionStatus.PENDING:
                return min(self.lease_until, self.deadline)
        return None

    def to_json(self) -> str:
        """The record as JSON (pydantic serialises it in one pass, card included)."""
        return _RECORD.dump_json(self).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> CallRecord:
        """A record from its JSON; pydantic's ValidationError (a ValueError) when it is not one."""
        return _RECORD.validate_json(text)


_RECORD: TypeAdapter[CallRecord] = TypeAdapter(CallRecord)


# -- changes ------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Event:
    """A telephony event, its agents resolved to ids. `token` owns the lookup if this event starts it."""

    kind: EventKind
    agents: tuple[str, ...] = ()
    at: float | None = None
    token: str = ""

    @property
    def key(self) -> str | None:
        """What makes two events the same one (only an event with `at` can be told apart from a repeat)."""
        return None if self.at is None else f"{self.kind.value}|{','.join(self.agents)}|{self.at!r}"


@dataclass(frozen=True, slots=True)
class Settle:
    """A section of the lookup run `token` settled."""

    token: str
    section: Section


@dataclass(frozen=True, slots=True)
class Renew:
    """The lookup run `token` is still running: extend its lease."""

    token: str


@dataclass(frozen=True, slots=True)
class Sweep:
    """A periodic check: take over a lookup whose owner's lease ran out, or close it past the deadline."""

    token: str


@dataclass(frozen=True, slots=True)
class Select:
    """`agent` picked `customer_id` among the card's candidates (or `found` it by a search by hand): a new
    lookup run `token` for its sections."""

    agent: str
    customer_id: str
    token: str
    found: Customer | None = None


@dataclass(frozen=True, slots=True)
class Wrapped:
    """`agent` saved the call's wrap-up: the ended call leaves their index (their next snapshot)."""

    agent: str


@dataclass(frozen=True, slots=True)
class Drop:
    """Close the call (nobody ended it in time, or too many calls are kept)."""

    reason: str


Change = Event | Settle | Renew | Sweep | Select | Wrapped | Drop


@dataclass(frozen=True, slots=True)
class Effect:
    """A message to send once the transition is stored. `detail`: the Section (`section`), the agent
    (`answered`), the reason (`withdrawn`, `ended`); `ringing` sends the card as stored."""

    kind: EffectKind
    call_id: str
    to: tuple[str, ...]
    detail: Any = None


@dataclass(slots=True)
class Outcome:
    """What a transition did. `start`: this change gave the lookup to its token ("fresh": a new call's
    lookup, "resume": a takeover, "select": the sections of a selected customer). `refused`: why not."""

    record: CallRecord | None
    effects: list[Effect] = field(default_factory=list)
    changed: bool = False
    start: Literal["fresh", "resume", "select"] | None = None
    refused: str | None = None


# -- the transition -----------------------------------------------------------------------------------

def new_record(card: Card) -> CallRecord:
    """The record of a call seen for the first time."""
    return CallRecord(card=card)


def transition(call_id: str, record: CallRecord | None, change: Change, now: float, *,
               lease_s: float = 3.0, deadline_s: float = 5.0) -> Outcome:
    """The record after `change` at `now` (unix seconds) and the effects to send. `record` None: a call
    not seen yet (only `ended` makes one then: the tombstone; the caller makes the record of a new call
    with `new_record`). `lease_s`: a lookup owner's lease; `deadline_s`: a new lookup run's time."""
    if record is None:
        if isinstance(change, Event) and change.kind is EventKind.ENDED:
            record = CallRecord(card=Card(call_id=call_id, caller=Caller(raw="", status="invalid"), state="ended"))
            return Outcome(record, changed=True)
        return Outcome(None, refused="no such call")
    if isinstance(change, Wrapped):
        if change.agent not in record.wrapup:
            return Outcome(record, refused="no wrap-up owed by this agent")
        record.wrapup = [a for a in record.wrapup if a != change.agent]
        return Outcome(record, changed=True)
    if record.card.state == "ended":
        return Outcome(record, refused="the call ended")
    t = _Turn(call_id, record, now, lease_s, deadline_s)
    if isinstance(change, Event):
        t.event(change)
    elif isinstance(change, Settle):
        t.settle(change)
    elif isinstance(change, Renew):
        if change.token != record.lookup or not record.pending():
            t.out.refused = "the lookup is no longer this run's"
        else:
            record.lease_until, t.out.changed = now + lease_s, True
    elif isinstance(change, Sweep):
        t.sweep(change)
    elif isinstance(change, Select):
        t.select(change)
    else:
        t.end(change.reason)
    return t.out


class _Turn:
    """One transition of one record (the helpers share the record and the outcome)."""

    def __init__(self, call_id: str, record: CallRecord, now: float, lease_s: float, deadline_s: float) -> None:
        self.call_id, self.rec, self.card, self.now = call_id, record, record.card, now
        self.lease_s, self.deadline_s = lease_s, deadline_s
        self.out = Outcome(record)

    def emit(self, kind: EffectKind, to: list[str] | tuple[str, ...], detail: Any = None) -> None:
        self.out.changed = True
        if to:
            self.out.effects.append(Effect(kind, self.call_id, tuple(to), detail))

    def own_lookup(self, token: str, start: Literal["fresh", "resume", "select"]) -> None:
        rec = self.rec
        rec.lookup, rec.lease_until = token, self.now + self.lease_s
        if start != "resume":
            rec.deadline = self.now + self.deadline_s
        self.out.start, self.out.changed = start, True

    # -- events ----------------------------------------------------------------------------------
    def event(self, e: Event) -> None:
        rec = self.rec
        key = None
        if e.at is not None:
            key = e.key
            if key in rec.seen or (rec.last_at is not None and e.at < rec.last_at and e.kind is not EventKind.ENDED):
                self.out.refused = "a repeated or older event"
                return
        if e.kind is EventKind.ENDED:
            self.end("the call ended")
        else:
            if rec.lookup is None and self.card.caller.status == "ok":
                self.own_lookup(e.token, "fresh")
            if e.kind is EventKind.RINGING:
                self.ring(e.agents)
            elif e.kind is EventKind.ANSWERED:
                self.answer(e.agents[0] if e.agents else None)
            elif e.kind is EventKind.WITHDRAWN:
                self.withdraw(e.agents, "stopped ringing")
        if self.out.changed and e.at is not None:
            rec.last_at = e.at if rec.last_at is None else max(rec.last_at, e.at)
            rec.seen = [*rec.seen[-(MAX_SEEN - 1):], f"{key}"]

    def ring(self, agents: tuple[str, ...] | list[str]) -> None:
        """Give the card to the agents who do not have it yet."""
        card, rec = self.card, self.rec
        new = [a for a in agents if a not in rec.ringing]
        if not new:
            return
        if card.state == "answered" and card.answered_by:
            if card.answered_by in agents:  # the PBX retried the ring: the call stays with who answered
                return
            card.transferred_from = card.answered_by  # rings again elsewhere: a transfer, same card
        card.state = "ringing"
        rec.ringing.extend(new)
        self.emit("ringing", new)

    def answer(self, agent: str | None) -> None:
        card, rec = self.card, self.rec
        if card.state == "answered" and card.answered_by == agent:
            return
        if agent is not None and agent not in rec.ringing:
            self.ring([agent])
        if card.state == "answered" and card.answered_by and agent and card.answered_by != agent:
            card.transferred_from = card.answered_by  # answered elsewhere without ringing first
        card.state, card.answered_by = "answered", agent
        others = [a for a in rec.ringing if a != agent] if agent else []
        keep = [a for a in rec.ringing if a not in others]
        self.emit("answered", keep, agent)
        if card.transferred_from in others:
            self.withdraw([card.transferred_from], f"transferred to {agent}")
        self.withdraw(others, "answered by another agent")
        rec.ringing = keep

    def withdraw(self, agents: tuple[str, ...] | list[str], reason: str) -> None:
        """Take the card from `agents` (never from the agent who has the call answered)."""
        card, rec = self.card, self.rec
        gone = [a for a in agents if a in rec.ringing and not (card.state == "answered" and a == card.answered_by)]
        if gone:
            rec.ringing = [a for a in rec.ringing if a not in gone]
            self.emit("withdrawn", gone, reason)

    def end(self, reason: str) -> None:
        rec, card = self.rec, self.card
        owes = card.answered_by if card.answered_by in rec.ringing else None  # (a tombstone has nobody)
        card.state = "ended"
        to, rec.ringing = rec.ringing, []
        rec.wrapup = [owes] if owes else []
        self.emit("ended", to, reason)

    # -- the lookup ------------------------------------------------------------------------------
    def settle(self, s: Settle) -> None:
        if s.token != self.rec.lookup:
            self.out.refused = "the lookup is no longer this run's"
            return
        protocol.apply_section(self.card, s.section)
        self.rec.lease_until = self.now + self.lease_s
        self.emit("section", self.rec.ringing, s.section)

    def sweep(self, s: Sweep) -> None:
        rec = self.rec
        pending = rec.pending()
        if rec.lookup is None or not pending:
            return
        if self.now >= rec.deadline:  # nobody may keep a section pending past the deadline
            rec.lookup = s.token  # fences off the run that was late
            for p in pending:
                self.settle_now(p.model_copy(update={"status": SectionStatus.UNAVAILABLE, "reason": STOPPED}))
        elif self.now >= rec.lease_until:
            self.own_lookup(s.token, "resume")

    def settle_now(self, section: Section) -> None:
        protocol.apply_section(self.card, section)
        self.emit("section", self.rec.ringing, section)

    def select(self, s: Select) -> None:
        card, rec = self.card, self.rec
        if s.agent not in rec.ringing:
            self.out.refused = "no such call for this agent"
            return
        chosen = s.found if s.found is not None and s.found.id == s.customer_id else next(
            (c for c in card.candidates if c.id == s.customer_id), None)
        if chosen is None:
            self.out.refused = "that customer is not among the candidates"
            return
        if rec.pending():
            self.out.refused = "the lookup is still running"
            return
        customer = card.section(CUSTOMER_SECTION)
        data = {"match": "selected", "customer": chosen.model_dump(mode="json"),
                "candidates": [c.model_dump(mode="json") for c in card.candidates]}
        self.own_lookup(s.token, "select")
        self.settle_now(Section(name=CUSTOMER_SECTION, title="Customer", status=SectionStatus.OK, data=data,
                                source=customer.source if customer else "",
                                view=customer.view if customer else None))
        for old in card.sections[1:]:
            self.settle_now(old.model_copy(update={"status": SectionStatus.PENDING, "data": None, "reason": None,
                                                   "latency_ms": None, "cached": False, "age_s": None}))


def settle_at_hand(call_id: str, out: Outcome, sections: list[Section]) -> None:
    """Put the sections a fresh lookup had at hand on the card of `out`, in the same transition: agents
    who get the card in this transition see them in it; agents who had it already get them as sections."""
    rec = out.record
    assert rec is not None
    rung = {a for e in out.effects if e.kind == "ringing" for a in e.to}
    before = [a for a in rec.ringing if a not in rung]
    for s in sections:
        protocol.apply_section(rec.card, s)
        if before:
            out.effects.append(Effect("section", call_id, tuple(before), s))
