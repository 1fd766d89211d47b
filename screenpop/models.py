"""The shared vocabulary of screenpop.

Every room (telephony adapters, connectors, the call flow, the browser protocol) speaks in these types.
This module imports nothing of the project, so any room may import it.

    CallEvent   what a telephony adapter reports: one step of one call
    Caller      the calling number as received and as normalised (E.164)
    Customer    one record of the identity source
    LookupQuery what a connector is asked: the number, and the customer once it is known
    Section     one part of a card (the customer, the balance, ...) with its own status
    View        how the console shows a section (`customer`, `fields`, `table`, `offers`), with its columns
    Card        everything the agent sees for one call
    WrapUp      what an agent wrote about a call (notes, disposition, follow-up), written back by a journal

and the one way to tell what was wrong with a value pydantic refused: `format_validation_error`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [  # the shared vocabulary: what plugins and every room import (pinned by a test)
    "CUSTOMER_SECTION", "SETTLED", "CallEvent", "CallState", "Caller", "Card", "Column", "ColumnFormat", "Customer",
    "EventKind", "LookupQuery", "Section", "SectionStatus", "View", "ViewKind", "WrapUp", "format_validation_error",
]

class EventKind(StrEnum):
    """The four steps of a call that screenpop reacts to."""

    OFFERED = "offered"  # the call reached the PBX (IVR, queue): start the lookup
    RINGING = "ringing"  # the phones of `agents` ring: they get the card
    ANSWERED = "answered"  # one agent picked up: the others lose the card
    WITHDRAWN = "withdrawn"  # the phones of `agents` stopped ringing (no answer, queue moved on)
    ENDED = "ended"  # the call is over


class CallEvent(BaseModel):
    """One step of one call, as reported by a telephony adapter."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    call_id: str = Field(min_length=1, max_length=200)
    event: EventKind
    caller: str = Field(max_length=100)
    called: str | None = Field(default=None, max_length=100)
    agents: list[str] = Field(default_factory=list, max_length=200)
    at: datetime | None = None


class SectionStatus(StrEnum):
    """Where one section of a card stands."""

    PENDING = "pending"  # its connector is still working
    OK = "ok"  # data arrived
    EMPTY = "empty"  # the source answered, and had nothing for this customer
    TIMEOUT = "timeout"  # the source did not answer in time
    ERROR = "error"  # the source failed or answered something unusable (see `reason`)
    UNAVAILABLE = "unavailable"  # the source is switched off or known to be down
    STALE = "stale"  # an old value shown while a fresh one is fetched (see `age_s`)


SETTLED = frozenset(s for s in SectionStatus if s is not SectionStatus.PENDING)


class Caller(BaseModel):
    """The calling number: as received, and normalised when it can be."""

    raw: str
    e164: str | None = None
    display: str = ""
    status: Literal["ok", "withheld", "invalid"] = "ok"


class Customer(BaseModel):
    """One customer record from the identity source. `extra` keeps the other columns."""

    id: str
    name: str
    phone: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class LookupQuery(BaseModel):
    """What a connector is asked. `customer_id` is None for the identity lookup."""

    phone: str  # E.164, e.g. +14155550100
    raw: str = ""
    called: str | None = None
    customer_id: str | None = None
    suffix: str | None = None  # the last digits of the number, for an identity_fallback source

    def template_values(self) -> dict[str, str]:
        """The values a connector may put in a URL or a query: phone, raw, called, customer_id, suffix."""
        return {
            "phone": self.phone,
            "raw": self.raw,
            "called": self.called or "",
            "customer_id": self.customer_id or "",
            "suffix": self.suffix or "",
        }


CUSTOMER_SECTION = "customer"
"""The name of the card's first section, the identity match (reserved: no connector section may take it)."""

ViewKind = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
"""The name of one of the console's renderers, `web/js/views/<kind>.js` (a config naming one that does not
exist is refused: screenpop.config). Shipped: `customer` the identity match (one customer, none, or a
choice among several); `fields` one record as labelled values; `table` a list of records as rows;
`offers` a list of suggestions, each with its reason. Adding a renderer there adds a kind."""

ColumnFormat = Literal["text", "money", "number", "percent", "date", "yesno"]
"""How a value is shown: money takes the currency of its record (`currency` or `currency_code`); percent
shows 0.77 as 77 %; date an ISO date or date-time in the agent's locale; yesno a boolean as Yes/No."""


class Column(BaseModel):
    """One field of a section's data as the console shows it: its key, a label, a format."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(min_length=1, max_length=100)
    label: str | None = Field(default=None, max_length=100)  # None: the key humanised, "last_payment": "Last payment"
    format: ColumnFormat | None = None  # None: guessed from the key and the value, as without a view


class View(BaseModel):
    """How the console shows a section. `columns` picks and orders the fields shown (every field, in the
    data's order, when empty); a column may be written as its key alone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ViewKind = "fields"
    columns: tuple[Column, ...] = Field(default=(), max_length=50)

    @field_validator("columns", mode="before")
    @classmethod
    def _keys_as_columns(cls, v: Any) -> Any:
        if isinstance(v, list | tuple):
            return tuple({"key": c} if isinstance(c, str) else c for c in v)
        return v

    @field_validator("columns")
    @classmethod
    def _unique_keys(cls, v: tuple[Column, ...]) -> tuple[Column, ...]:
        keys = [c.key for c in v]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise ValueError(f"column key(s) {dup} appear more than once")
        return v


class Section(BaseModel):
    """One part of a card, settled on its own. The `customer` section holds the identity match; `view`
    says how the console shows it (None: the console picks a layout from the data's shape)."""

    name: str
    title: str = ""
    status: SectionStatus = SectionStatus.PENDING
    data: Any = None
    source: str = ""
    latency_ms: float | None = None
    cached: bool = False
    age_s: float | None = None
    reason: str | None = None
    view: View | None = None


CallState = Literal["offered", "ringing", "answered", "ended"]


class Card(BaseModel):
    """Everything an agent sees for one call. Sections are listed in display order, `customer` first."""

    call_id: str
    state: CallState = "offered"
    caller: Caller
    called: str | None = None
    customer: Customer | None = None
    candidates: list[Customer] = Field(default_factory=list)
    sections: list[Section] = Field(default_factory=list)
    answered_by: str | None = None
    transferred_from: str | None = None  # the agent who had answered before the call rang again elsewhere
    started_at: datetime | None = None

    def section(self, name: str) -> Section | None:
        """The section called `name`, or None."""
        for s in self.sections:
            if s.name == name:
                return s
        return None

    @property
    def complete(self) -> bool:
        """True once every section has settled."""
        return all(s.status in SETTLED for s in self.sections)


class WrapUp(BaseModel):
    """One agent's wrap-up of one call, as a journal connector writes it back. `key` is the same for every
    delivery of the same (call, agent): the target uses it to keep exactly one entry (`Idempotency-Key`)."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=200)
    call_id: str = Field(min_length=1, max_length=200)
    agent: str = Field(min_length=1, max_length=64)
    agent_name: str = ""
    customer_id: str | None = None
    customer_name: str | None = None
    phone: str | None = None  # the caller's number, E.164 when known
    disposition: str = Field(default="", max_length=64)
    notes: str = Field(default="", max_length=10_000)
    follow_up: date | None = None
    saved_at: datetime

    def template_values(self) -> dict[str, str]:
        """The values a journal may put in a URL, a header or a body template (strings; "" when unknown)."""
        return {
            "key": self.key, "call_id": self.call_id, "agent": self.agent, "agent_name": self.agent_name,
            "customer_id": self.customer_id or "", "customer_name": self.customer_name or "",
            "phone": self.phone or "", "disposition": self.disposition, "notes": self.notes,
            "follow_up": self.follow_up.isoformat() if self.follow_up else "",
            "saved_at": self.saved_at.isoformat(),
        }


# -- validation errors --------------------------------------------------------------------------------
MAX_PROBLEMS = 10  # problems listed in one message; the rest are counted
MAX_MESSAGE = 1000  # characters of one message
_MAX_NAME = 64  # characters of one part of a field's path (a JSON body's keys come from outside)
_MAX_REASON = 200  # characters of one reason

Loc = tuple[int | str, ...]


def format_validation_error(err: ValidationError | Sequence[Mapping[str, Any]], *, prefix: str = "",
                            root: str = "(top level)", where: Callable[[Loc], str] | None = None,
                            limit: int = MAX_PROBLEMS) -> str:
    """What pydantic refused, as one line `where: what; where: what`, safe to show to whoever sent it.

    `err` is a ValidationError or its `errors()` (FastAPI's RequestValidationError gives those). `where` is
    the field's path (`agents[0].password_hash`) after `prefix`, or `root` for the value as a whole, or what
    the `where` function makes of the path. `what` is pydantic's reason without its URL; a choice says
    "expected one of ..." and a key the model does not have says "unknown field". Never the input value,
    never a stack trace; at most `limit` problems (the others counted) and MAX_MESSAGE characters.
    """
    problems = err.errors(include_url=False, include_input=False) if isinstance(err, ValidationError) else err
    lines = [f"{_where(tuple(e.get('loc', ())), prefix, root, where)}: {_reason(e)}" for e in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"and {len(problems) - limit} more")
    text = "; ".join(lines) or f"{root}: invalid"
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 1] + "\u2026"


def _where(loc: Loc, prefix: str, root: str, where: Callable[[Loc], str] | None) -> str:
    if where is not None:
        return where(loc)
    path = ""
    for part in loc:
        name = str(part)[:_MAX_NAME]
        path += f"[{name}]" if isinstance(part, int) else (f".{name}" if path else name)
    return prefix + path if path else (prefix.rstrip(".") or root)


def _reason(problem: Mapping[str, Any]) -> str:
    kind, ctx = problem.get("type"), problem.get("ctx") or {}
    if kind in ("enum", "literal_error") and "expected" in ctx:
        reason = f"expected one of {ctx['expected']}"
    elif kind == "extra_forbidden":
        reason = "unknown field"
    else:
        reason = re.sub(r"^(Value error|Assertion failed), ", "", str(problem.get("msg", "invalid")))
    reason = reason.replace("\n", " ")
    return reason if len(reason) <= _MAX_REASON else reason[:_MAX_REASON - 1] + "\u2026"
