"""The agent protocol: the wire format of each message, and the card rule both sides share (fixtures)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from screenpop import protocol
from screenpop.models import Caller, Card, Section, SectionStatus, View
from tests.conftest import need

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = sorted((ROOT / "tests" / "fixtures" / "protocol").glob("*.json"))
SECTION_FIELDS = {"name", "title", "status", "data", "source", "latency_ms", "cached", "age_s", "reason", "view"}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixture_cards_through_the_json_form(path: Path) -> None:
    """`apply` on the JSON form (the hub's snapshot) gives each fixture's card."""
    fixture = load(path)
    card = None
    for message in copy.deepcopy(fixture["messages"]):
        card = protocol.apply(card, message)
    assert card == fixture["card"]


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixture_cards_through_the_models(path: Path) -> None:
    """`apply_section` on the registry's Card and Sections gives the same card as on the JSON form."""
    fixture = load(path)
    ringing, *rest = fixture["messages"]
    card = Card.model_validate(ringing["call"])
    for m in rest:
        if m["type"] == "card.section":
            protocol.apply_section(card, Section.model_validate({k: v for k, v in m.items() if k in SECTION_FIELDS}))
    got = card.model_dump(mode="json")
    assert got["sections"] == fixture["card"]["sections"]
    assert (got["customer"], got["candidates"]) == (fixture["card"]["customer"], fixture["card"]["candidates"])


def test_the_console_follows_the_same_fixtures() -> None:
    """web/js/protocol.js, run by node, gives the same cards from the same fixtures."""
    node = shutil.which("node")
    need(node is not None, "node is not installed (the console's protocol test needs it)")
    assert node is not None
    done = subprocess.run([node, "--test", str(ROOT / "tests" / "js")], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env={**os.environ, "NODE_OPTIONS": ""})
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"# pass {len(FIXTURES)}" in done.stdout, done.stdout


def test_messages_have_the_documented_fields() -> None:
    """Each builder gives its DESIGN.md message: type and fields, serialised once, with its envelope header."""
    card = Card(call_id="c1", caller=Caller(raw="+1", e164="+1"),
                sections=[Section(name="balance", status=SectionStatus.OK, data={"balance": 1},
                                  view=View(kind="fields", columns=["balance"]))])
    ringing = protocol.ringing(card)
    assert (ringing.kind, ringing.call_id) == ("call.ringing", "c1")
    assert json.loads(ringing.text) == {"type": "call.ringing", "call": card.model_dump(mode="json")}
    section = json.loads(protocol.section("c1", card.sections[0]).text)
    assert set(section) == {"type", "call_id"} | SECTION_FIELDS and section["type"] == "card.section"
    assert section["view"] == {"kind": "fields", "columns": [{"key": "balance", "label": None, "format": None}]}
    assert json.loads(protocol.answered("c1", "alice").text) == {"type": "call.answered", "call_id": "c1",
                                                                 "agent": "alice"}
    assert json.loads(protocol.withdrawn("c1", "x").text) == {"type": "call.withdrawn", "call_id": "c1", "reason": "x"}
    assert json.loads(protocol.ended("c1", "y").text) == {"type": "call.ended", "call_id": "c1", "reason": "y"}
    assert json.loads(protocol.snapshot([])) == {"type": "snapshot", "calls": []}


def test_the_envelope_round_trips() -> None:
    """An envelope gives back its recipients, type, call id and text; tabs or newlines in a call id are blanked."""
    message = protocol.ended("a\tb\nc", "over")
    to, kind, call_id, text = protocol.open_envelope(protocol.envelope(["alice", "bob"], message))
    assert (to, kind, call_id, text) == (["alice", "bob"], "call.ended", "a b c", message.text)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixture_requests_are_what_the_server_reads(path: Path) -> None:
    """Each request the console builds (the fixture's `requests`) is read by `read_request` as it is."""
    for r in load(path).get("requests", []):
        request = protocol.read_request(r["message"])
        assert not isinstance(request, str), request
        assert request.model_dump(mode="json") == r["message"]


def test_wrapup_state_is_built_from_the_stored_entry() -> None:
    """`wrapup.state` carries the entry's fields, its state, tries and last error, for the agent."""
    from datetime import UTC, date, datetime

    from screenpop.models import WrapUp

    entry = WrapUp(key="k", call_id="c3", agent="alice", disposition="callback", notes="n",
                   follow_up=date(2026, 12, 1), saved_at=datetime(2026, 1, 5, 10, 5, tzinfo=UTC))
    m = protocol.wrapup_state(entry, "queued", 1, "HTTP 503")
    body = json.loads(m.text)
    assert (m.kind, m.call_id) == ("wrapup.state", "c3")
    assert body == {"type": "wrapup.state", "call_id": "c3", "agent": "alice", "state": "queued", "attempts": 1,
                    "last_error": "HTTP 503", "disposition": "callback", "notes": "n", "follow_up": "2026-12-01",
                    "saved_at": "2026-01-05T10:05:00Z"}


@pytest.mark.parametrize("message", [
    {"type": "wrapup", "call_id": "c", "disposition": ""},
    {"type": "wrapup", "call_id": "c", "disposition": "x", "follow_up": "tomorrow"},
    {"type": "wrapup", "call_id": "c", "disposition": "x", "notes": "n" * 10_001},
    {"type": "wrapup.draft", "call_id": "", "notes": ""},
    {"type": "wrapup", "call_id": "c", "disposition": "x", "extra": 1},
])
def test_bad_requests_get_a_reason(message: dict[str, Any]) -> None:
    """A malformed wrap-up is refused with a short reason, never an exception."""
    assert isinstance(protocol.read_request(message), str)
