"""Structured logs: one JSON object a line, carrying the call id, never the card."""

from __future__ import annotations

import io
import json
import logging

from screenpop.auth import Directory
from screenpop.calls import CallRegistry
from screenpop.logs import JsonFormatter, _CallId
from screenpop.models import CallEvent
from tests.unit.fakes import RecordingOutbox, demo_lookup


async def test_lines_about_a_call_carry_its_id_as_json() -> None:
    """A warning logged while handling a call's event is one JSON line with that call's id."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(_CallId())
    logger = logging.getLogger("screenpop.calls")
    logger.addHandler(handler)
    try:
        lookup, _ = demo_lookup()
        registry = CallRegistry(Directory([]), lookup, RecordingOutbox())  # type: ignore[arg-type]
        await registry.handle(CallEvent(call_id="call-77", event="ringing", caller="+14155550100", agents=["9"]))
        await registry.close()
    finally:
        logger.removeHandler(handler)
    line = json.loads(out.getvalue().splitlines()[0])
    assert line["call_id"] == "call-77" and line["level"] == "WARNING"
    assert "no agent has the address" in line["msg"]
    assert "Dana" not in out.getvalue()
