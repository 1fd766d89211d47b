"""The agent protocol: every message the server sends an agent's browser, built here and only here.

Server -> agent, one JSON object per message, with a `type` (DESIGN.md, "Public contracts"):

    snapshot        {"type", "calls": [card, ...]}           the agent's active calls, on connect, and
                                                              the ended ones whose wrap-up they owe
    call.ringing    {"type", "call": card}                    the card so far, sections as a list
    card.section    {"type", "call_id", <the Section's fields: name, title, status, data, source,
                     latency_ms, cached, age_s, reason, view>}
    call.answered   {"type", "call_id", "agent"}
    call.withdrawn  {"type", "call_id", "reason"}
    call.ended      {"type", "call_id", "reason"}
    wrapup.state    {"type", "call_id", "agent", "state", "attempts", "last_error", "disposition", "notes",
                     "follow_up", "saved_at"}                 where the agent's wrap-up stands (state: draft,
                     queued, saved, local, refused); only to that agent

Agent -> server (`read_request` checks them; web/js/protocol.js builds them):

    ack             {"type", "call_id"}                       the ringing card is on screen
    select          {"type", "call_id", "customer_id"}        the agent's choice among several customers
    wrapup          {"type", "call_id", "notes", "disposition", "follow_up"}   save the wrap-up
    wrapup.draft    {"type", "call_id", "notes"}              the notes so far (a transfer carries them)

A message is serialised once (pydantic, in one pass), whatever the number of its recipients, and crosses
the bus in an envelope `"<agent id>,<agent id>\\t<type>\\t<call id>\\n<JSON>"` (agent ids hold no comma,
tab or newline), so the hub routes it without parsing the JSON.

`apply` is how a card changes with each message, the one rule the registry (on its `Card`), the hub (on
the JSON it replays for a snapshot) and the console (web/js/protocol.js, its mirror) follow. The shared
fixtures in tests/fixtures/protocol/ pin both sides to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from screenpop.models import CUSTOMER_SECTION, Card, Customer, Section, WrapUp, format_validation_error

__all__ = [
    "CUSTOMER_SECTION",
    "Message",
    "answered",
    "apply",
    "apply_section",
    "ended",
    "envelope",
    "open_envelope",
    "read_request",
    "ringing",
    "section",
    "snapshot",
    "withdrawn",
    "wrapup_state",
]

_JSON: TypeAdapter[Any] = TypeAdapter(Any)  # serialises dicts holding models (a Card, a View) in one pass


@dataclass(frozen=True, slots=True)
class Message:
    """One agent message, serialised: its `type`, the call it is about, and its JSON text."""

    kind: str
    call_id: str
    text: str


def _message(kind: str, call_id: str, body: dict[str, Any]) -> Message:
    return Message(kind, call_id, _JSON.dump_json(body).decode())


def ringing(card: Card) -> Message:
    """`call.ringing`: the card as it stands."""
    return _message("call.ringing", card.call_id, {"type": "call.ringing", "call": card})


def section(call_id: str, settled: Section) -> Message:
    """`card.section`: one section of the card, as it now stands."""
    return _message("card.section", call_id, {"type": "card.section", "call_id": call_id, **settled.model_dump()})


def answered(call_id: str, agent: str | None) -> Message:
    """`call.answered`: `agent` picked up (the card stays with them)."""
    return _message("call.answered", call_id, {"type": "call.answered", "call_id": call_id, "agent": agent})


def withdrawn(call_id: str, reason: str) -> Message:
    """`call.withdrawn`: the card is taken from its recipients (the call goes on elsewhere)."""
    return _message("call.withdrawn", call_id, {"type": "call.withdrawn", "call_id": call_id, "reason": reason})


def ended(call_id: str, reason: str) -> Message:
    """`call.ended`: the call is over."""
    return _message("call.ended", call_id, {"type": "call.ended", "call_id": call_id, "reason": reason})


def wrapup_state(entry: WrapUp, state: str, attempts: int = 0, last_error: str | None = None) -> Message:
    """`wrapup.state`: where the agent's wrap-up of the call stands (its fields as stored)."""
    return _message("wrapup.state", entry.call_id, {
        "type": "wrapup.state", "call_id": entry.call_id, "agent": entry.agent, "state": state,
        "attempts": attempts, "last_error": last_error, "disposition": entry.disposition, "notes": entry.notes,
        "follow_up": entry.follow_up, "saved_at": entry.saved_at})


def snapshot(cards: list[dict[str, Any]]) -> str:
    """`snapshot`: the agent's active calls (cards in their JSON form), oldest first."""
    return _JSON.dump_json({"type": "snapshot", "calls": cards}).decode()


# -- the bus envelope ------------------------------------------------------------------------------------

BUNDLE_SEP = "\x00"
"""Between the envelopes of a bundle (several envelopes in one bus message). An envelope never holds it: the
recipients are agent ids (names without control characters), the call id has it replaced, and the message
is JSON, whose strings escape every control character."""


def envelope(recipients: Iterable[str], message: Message) -> str:
    """Pack a serialised message with its recipients, its type and its call id."""
    call_id = message.call_id.replace("\t", " ").replace("\n", " ").replace(BUNDLE_SEP, " ")
    return f"{','.join(recipients)}\t{message.kind}\t{call_id}\n{message.text}"


def unbundle(text: str) -> list[str]:
    """The envelopes of a bus message: one, or those of a bundle, in order."""
    return text.split(BUNDLE_SEP)


def open_envelope(text: str) -> tuple[list[str], str, str, str]:
    """Unpack an envelope into (recipients, type, call id, the message's JSON text)."""
    head, _, payload = text.partition("\n")
    to, _, rest = head.partition("\t")
    kind, _, call_id = rest.partition("\t")
    return (to.split(",") if to else []), kind, call_id, payload  # `envelope` never writes an empty name


# -- how a card changes ----------------------------------------------------------------------------------

CardT = TypeVar("CardT", Card, dict[str, Any])


def apply_section(card: CardT, settled: Section | dict[str, Any]) -> CardT:
    """Put a section on the card, in place of the one of the same name (at the end if there is none; a
    section without a title keeps the one it replaces). The customer section's data (a dict) also sets
    the card's `customer` and `candidates`. Works on a `Card` (the registry) and on a card's JSON form
    with a `card.section` message's fields (the hub, the console); returns the card, changed in place."""
    name: Any
    title: Any
    if isinstance(settled, Section):
        name, data, title = settled.name, settled.data, settled.title
    else:
        settled = {k: v for k, v in settled.items() if k not in ("type", "call_id")}
        name, data, title = settled.get("name"), settled.get("data"), settled.get("title")
    if isinstance(card, Card):
        sections: list[Any] = card.sections
    else:
        sections = card.get("sections") or []
        card["sections"] = sections
    i = _index(sections, name, isinstance(card, Card))
    if i >= 0:
        if not title:
            old = sections[i].title if isinstance(card, Card) else sections[i].get("title", "")
            settled = (settled.model_copy(update={"title": old}) if isinstance(settled, Section)
                       else {**settled, "title": old})
        sections[i] = settled
    else:
        sections.append(settled)
    if name == CUSTOMER_SECTION and isinstance(data, dict):
        customer, candidates = data.get("customer"), data.get("candidates")
        candidates = candidates if isinstance(candidates, list) else []
        if isinstance(card, Card):
            card.customer = _customer(customer)
            card.candidates = [c for c in map(_customer, candidates) if c is not None]
        else:
            card["customer"] = customer
            card["candidates"] = candidates
    return card


def _index(sections: list[Any], name: Any, models: bool) -> int:
    """Where the section called `name` is in `sections` (Section models, else dicts), or -1."""
    for i, s in enumerate(sections):
        if (s.name if models else s.get("name")) == name:
            return i
    return -1


def apply(card: dict[str, Any] | None, message: dict[str, Any]) -> dict[str, Any] | None:
    """A card's JSON form after one message about its call (`call.ringing` gives the card itself; None
    before it). `call.withdrawn` changes nothing on the card: it takes the card away from the agent."""
    kind = message.get("type")
    if kind == "call.ringing":
        return message.get("call")
    if card is None:
        return None
    if kind == "card.section" and isinstance(message.get("name"), str):
        apply_section(card, message)
    elif kind == "call.answered":
        card["state"], card["answered_by"] = "answered", message.get("agent")
    elif kind == "call.ended":
        card["state"] = "ended"
    elif kind == "wrapup.state":
        card["wrapup"] = {k: v for k, v in message.items() if k not in ("type", "call_id")}
    return card


# -- what an agent sends ---------------------------------------------------------------------------------

class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    call_id: str = Field(min_length=1, max_length=200)


class Ack(_Request):
    type: Literal["ack"]


class Select(_Request):
    type: Literal["select"]
    customer_id: str = Field(min_length=1, max_length=200)


class WrapUpRequest(_Request):
    """Save the wrap-up: notes, a disposition (one of the configured ids), an optional follow-up date."""

    type: Literal["wrapup"]
    notes: str = Field(default="", max_length=10_000)
    disposition: str = Field(min_length=1, max_length=64)
    follow_up: date | None = None


class DraftRequest(_Request):
    """The notes typed so far (not saved)."""

    type: Literal["wrapup.draft"]
    notes: str = Field(default="", max_length=10_000)


Request = Ack | Select | WrapUpRequest | DraftRequest
_REQUEST: TypeAdapter[Request] = TypeAdapter(Annotated[Request, Field(discriminator="type")])


def read_request(message: Any) -> Request | str:
    """An agent's message as its model, or a short reason why it is not one (never raises)."""
    if isinstance(message, dict) and isinstance(message.get("customer_id"), int | float):
        message = {**message, "customer_id": str(message["customer_id"])}
    try:
        return _REQUEST.validate_python(message)
    except ValidationError as err:
        return format_validation_error(err, limit=3)


def _customer(data: Any) -> Customer | None:
    """A Customer from section data, or None when there is none (or it is malformed)."""
    if not data:
        return None
    try:
        return Customer.model_validate(data)
    except ValidationError:
        return None
