"""The generic webhook adapter: signature checks and body parsing."""

import json

import pytest

from screenpop.models import EventKind
from telephony.base import PayloadError, SignatureError
from telephony.generic import GenericWebhook, sign

SECRET = "s3cret"
NOW = 1_800_000_000
BODY = json.dumps({"call_id": "c1", "event": "ringing", "caller": "+14155550100", "agents": ["1001"]}).encode()


def headers(body: bytes = BODY, secret: str = SECRET, t: int = NOW) -> dict[str, str]:
    return {"x-screenpop-signature": sign(body, secret, t)}


def test_good_signature_is_accepted() -> None:
    """A body signed with the secret at the current time verifies."""
    GenericWebhook(SECRET).verify(headers(), BODY, now=NOW + 10)


@pytest.mark.parametrize(
    ("hdrs", "body", "now", "message"),
    [
        ({}, BODY, NOW, "missing"),
        ({"x-screenpop-signature": "v1=abc"}, BODY, NOW, "malformed"),
        ({"x-screenpop-signature": "t=x,v1=abc"}, BODY, NOW, "not a number"),
        (headers(secret="other"), BODY, NOW, "does not match"),
        (headers(), BODY + b" ", NOW, "does not match"),
        (headers(), BODY, NOW + 301, "away from server time"),
        (headers(), BODY, NOW - 301, "away from server time"),
    ],
)
def test_bad_signatures_are_refused_with_a_reason(hdrs: dict, body: bytes, now: int, message: str) -> None:
    """Missing, malformed, wrong, tampered and replayed requests are refused, saying why."""
    with pytest.raises(SignatureError, match=message):
        GenericWebhook(SECRET).verify(hdrs, body, now=now)


def test_no_secret_configured_refuses_everything() -> None:
    """Without a configured secret nothing is accepted, and the message says what to set."""
    with pytest.raises(SignatureError, match="SCREENPOP_WEBHOOK_SECRET"):
        GenericWebhook(None).verify(headers(), BODY, now=NOW)


def test_parse_gives_one_event() -> None:
    """A valid body becomes one CallEvent with its fields."""
    (event,) = GenericWebhook(SECRET).parse({}, BODY)
    assert event.call_id == "c1" and event.event is EventKind.RINGING and event.agents == ["1001"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 422, "expected a JSON object"),
        (b'{"call_id": "c", "event": "exploded", "caller": "1"}', 422, "event: expected one of"),
        (b'{"event": "offered", "caller": "1"}', 422, "call_id"),
        (b'{"call_id": "c", "event": "offered", "caller": "1", "colour": "red"}', 422, "colour: unknown field"),
    ],
)
def test_bad_bodies_say_what_was_expected(body: bytes, status: int, message: str) -> None:
    """Malformed JSON is a 400; a wrong event, a missing or unknown field is a 422 naming the field."""
    with pytest.raises(PayloadError, match=message) as info:
        GenericWebhook(SECRET).parse({}, body)
    assert info.value.status == status
