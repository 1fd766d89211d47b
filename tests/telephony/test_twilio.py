"""The Twilio adapter: signatures checked against Twilio's own library, the status mapping, TwiML, the routes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode
from xml.etree import ElementTree as ET

import pytest
from starlette.datastructures import ImmutableMultiDict
from starlette.testclient import TestClient
from twilio.request_validator import RequestValidator

from screenpop.app import create_app
from screenpop.auth import hash_password
from screenpop.config import parse_config
from screenpop.models import EventKind
from screenpop.settings import Settings
from telephony.base import PayloadError, SignatureError
from telephony.twilio import (
    TwilioWebhook,
    compute_signature,
    dial_twiml,
    known_status,
    redirect_twiml,
    say_hangup_twiml,
    status_events,
    url_variants,
    verify_request,
    voice_events,
)

TOKEN = "12345678901234567890123456789012"
URL = "https://pop.example.com/telephony/twilio/voice"
PARAMS = {"CallSid": "CA1", "From": "+14155550100", "To": "+18005550100", "CallStatus": "ringing",
          "Body": "héllo & <bye> +"}
FORM = "application/x-www-form-urlencoded"


def sign(url: str, params: Any, token: str = TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


def form(params: Any) -> bytes:
    pairs = params.multi_items() if isinstance(params, ImmutableMultiDict) else list(params.items())
    return urlencode(pairs).encode()


# -- signatures --------------------------------------------------------------------------------------
def test_our_signature_is_twilios() -> None:
    """compute_signature gives exactly what Twilio's library computes, non-ASCII values included."""
    assert compute_signature(TOKEN, URL, PARAMS.items()) == sign(URL, PARAMS)


def test_a_form_signed_by_twilios_library_is_accepted() -> None:
    """A form body signed by RequestValidator verifies, and its parameters come back in order."""
    params = verify_request(TOKEN, URL, form(PARAMS), sign(URL, PARAMS), FORM)
    assert params == list(PARAMS.items())


@pytest.mark.parametrize(
    ("body", "signature", "message"),
    [
        (form({**PARAMS, "From": "+14155550111"}), sign(URL, PARAMS), "does not match"),
        (form(PARAMS) + b"&Extra=1", sign(URL, PARAMS), "does not match"),
        (form(PARAMS), sign(URL, PARAMS, token="another-token"), "does not match"),
        (form(PARAMS), sign(URL + "?x=1", PARAMS), "does not match"),
        (form(PARAMS), None, "missing X-Twilio-Signature"),
        (form(PARAMS), "", "missing X-Twilio-Signature"),
        (form(PARAMS), "not base64 at all", "does not match"),
    ],
    ids=["tampered-param", "added-param", "wrong-token", "other-url", "no-header", "empty-header", "garbage"],
)
def test_bad_form_requests_are_refused(body: bytes, signature: str | None, message: str) -> None:
    """A tampered or added parameter, another token or URL, and a missing header are refused, saying why."""
    with pytest.raises(SignatureError, match=message):
        verify_request(TOKEN, URL, body, signature, FORM)


def test_repeated_names_sign_like_twilio() -> None:
    """A repeated name signs each value, sorted: Twilio's signature holds whatever order the values come in."""
    multi = ImmutableMultiDict([("To", "+1"), ("Digits", "9"), ("Digits", "1"), ("Digits", "5")])
    signature = sign(URL, multi)
    assert verify_request(TOKEN, URL, form(multi), signature, FORM)[1:] == [("Digits", "9"), ("Digits", "1"),
                                                                            ("Digits", "5")]
    reordered = b"Digits=5&To=%2B1&Digits=1&Digits=9"
    verify_request(TOKEN, URL, reordered, signature, FORM)
    with pytest.raises(SignatureError):
        verify_request(TOKEN, URL, b"Digits=5&To=%2B1&Digits=1", signature, FORM)


@pytest.mark.parametrize(
    ("signed", "requested"),
    [
        ("https://pop.example.com/v?a=1", "https://pop.example.com:443/v?a=1"),
        ("https://pop.example.com:443/v?a=1", "https://pop.example.com/v?a=1"),
        ("http://pop.example.com/v", "http://pop.example.com:80/v"),
        ("http://pop.example.com:80/v", "http://pop.example.com/v"),
        ("https://[2001:db8::1]/v", "https://[2001:db8::1]:443/v"),
    ],
)
def test_the_default_port_may_be_signed_or_not(signed: str, requested: str) -> None:
    """Twilio may sign the URL with or without :443 / :80; both are accepted."""
    verify_request(TOKEN, requested, form(PARAMS), sign(signed, PARAMS), FORM)


@pytest.mark.parametrize(
    ("signed", "requested"),
    [
        ("https://pop.example.com/v", "https://pop.example.com:8443/v"),
        ("https://pop.example.com:80/v", "https://pop.example.com/v"),
        ("http://pop.example.com/v", "https://pop.example.com/v"),
    ],
)
def test_other_ports_and_schemes_must_match(signed: str, requested: str) -> None:
    """A port that is not the scheme's default, or another scheme, is part of what is signed."""
    with pytest.raises(SignatureError):
        verify_request(TOKEN, requested, form(PARAMS), sign(signed, PARAMS), FORM)


def test_url_variants_keep_everything_but_the_port() -> None:
    """Only the port changes; userinfo, path, query and fragment stay as they were."""
    assert url_variants("https://u:p@h.example/a:443?x=:443") == [
        "https://u:p@h.example/a:443?x=:443", "https://u:p@h.example:443/a:443?x=:443"]
    assert url_variants("ftp://h/x") == ["ftp://h/x"]


def json_request(body: bytes, url: str = URL) -> tuple[str, str]:
    """A URL carrying bodySHA256 of `body`, and Twilio's signature of it."""
    v = RequestValidator(TOKEN)
    signed_url = f"{url}?bodySHA256={v.compute_hash(body.decode())}"
    return signed_url, v.compute_signature(signed_url, {})


def test_a_json_body_with_its_sha256_is_accepted() -> None:
    """The JSON variant: signature over the URL alone, body hash in the URL; Twilio's library agrees."""
    body = json.dumps({"CallSid": "CA9", "CallStatus": "completed", "Digits": ["1", "2"]}).encode()
    url, signature = json_request(body)
    assert RequestValidator(TOKEN).validate(url, body.decode(), signature)
    params = verify_request(TOKEN, url, body, signature, "application/json")
    assert params == [("CallSid", "CA9"), ("CallStatus", "completed"), ("Digits", "1"), ("Digits", "2")]


def test_a_json_body_that_does_not_match_its_sha256_is_refused() -> None:
    """Changing the body after signing breaks the hash even though the URL signature is right."""
    body = b'{"CallSid": "CA9", "CallStatus": "completed"}'
    url, signature = json_request(body)
    with pytest.raises(SignatureError, match="bodySHA256"):
        verify_request(TOKEN, url, body.replace(b"CA9", b"CA8"), signature, "application/json")
    with pytest.raises(SignatureError, match="does not match the URL"):
        verify_request(TOKEN, url, body, sign(url, {}, token="another-token"), "application/json")


def test_a_json_body_without_sha256_is_refused() -> None:
    """A JSON body is only trusted through bodySHA256: without it the request is refused."""
    body = b'{"CallSid": "CA9"}'
    with pytest.raises(SignatureError, match="bodySHA256"):
        verify_request(TOKEN, URL, body, sign(URL, {}), "application/json; charset=utf-8")


def test_bad_bodies_are_payload_errors() -> None:
    """A signed but unreadable JSON body, or a non-UTF-8 form, is a PayloadError, not a crash."""
    url, signature = json_request(b"[1, 2]")
    with pytest.raises(PayloadError, match="JSON object"):
        verify_request(TOKEN, url, b"[1, 2]", signature)
    with pytest.raises(PayloadError, match="UTF-8"):
        verify_request(TOKEN, URL, b"\xff\xfe", "x", FORM)


# -- events ------------------------------------------------------------------------------------------
def test_the_voice_webhook_offers_the_call() -> None:
    """The incoming-call webhook gives offered with call_id = CallSid, caller = From, called = To."""
    (event,) = voice_events(PARAMS)
    assert (event.call_id, event.event, event.caller, event.called, event.agents) == (
        "CA1", EventKind.OFFERED, "+14155550100", "+18005550100", [])


LEG = {"CallSid": "CAleg", "ParentCallSid": "CAcall", "From": "+14155550100", "To": "client:alice"}


@pytest.mark.parametrize(
    ("status", "kind"),
    [("queued", None), ("initiated", None), ("ringing", EventKind.RINGING), ("in-progress", EventKind.ANSWERED),
     ("answered", EventKind.ANSWERED), ("completed", EventKind.WITHDRAWN), ("busy", EventKind.WITHDRAWN),
     ("no-answer", EventKind.WITHDRAWN), ("canceled", EventKind.WITHDRAWN), ("failed", EventKind.WITHDRAWN),
     ("Ringing", EventKind.RINGING), ("on-hold", None)],
)
def test_a_dialled_legs_status_maps_to_the_agents_step(status: str, kind: EventKind | None) -> None:
    """A leg's CallStatus becomes ringing / answered / withdrawn for the agent at To, on the parent call."""
    events = status_events({**LEG, "CallStatus": status})
    if kind is None:
        assert events == []
    else:
        (event,) = events
        assert (event.call_id, event.event, event.agents) == ("CAcall", kind, ["client:alice"])


@pytest.mark.parametrize(
    ("status", "kind"),
    [("completed", EventKind.ENDED), ("busy", EventKind.ENDED), ("no-answer", EventKind.ENDED),
     ("canceled", EventKind.ENDED), ("failed", EventKind.ENDED), ("ringing", EventKind.OFFERED),
     ("in-progress", EventKind.OFFERED)],
)
def test_the_callers_own_status_ends_or_offers_the_call(status: str, kind: EventKind) -> None:
    """A status callback without ParentCallSid is about the call itself: a final status ends it."""
    (event,) = status_events({"CallSid": "CAcall", "From": "+14155550100", "To": "+18005550100",
                              "CallStatus": status})
    assert (event.call_id, event.event, event.agents) == ("CAcall", kind, [])


def test_a_sip_leg_names_its_agent_and_unknown_statuses_are_known_as_such() -> None:
    """sip:USER@host is passed as the agent address; known_status tells Twilio's statuses from others."""
    (event,) = status_events({**LEG, "To": "sip:1001@pbx.example.com", "CallStatus": "ringing"})
    assert event.agents == ["sip:1001@pbx.example.com"]
    assert known_status("no-answer") and known_status("In-Progress") and not known_status("on-hold")


def test_a_request_without_callsid_is_a_payload_error() -> None:
    """No CallSid means no call to attach the event to: a 422 PayloadError naming the field."""
    with pytest.raises(PayloadError, match="CallSid") as info:
        status_events({"CallStatus": "ringing"})
    assert info.value.status == 422


# -- TwiML -------------------------------------------------------------------------------------------
def test_dial_twiml_rings_clients_and_sip_with_status_callbacks_and_escapes_names() -> None:
    """<Dial> holds one <Client> or <Sip> per address, each reporting its progress; & and < are escaped."""
    xml = dial_twiml(["client:a&b<c", "sip:1001@pbx.example.com", "1003"], "https://p.example/s?a=1&b=2", 25)
    assert "a&amp;b&lt;c" in xml and "a=1&amp;b=2" in xml and xml.startswith("<?xml")
    dial = ET.fromstring(xml).find("Dial")
    assert dial is not None and dial.attrib == {"timeout": "25", "answerOnBridge": "true"}
    assert [(n.tag, n.text) for n in dial] == [("Client", "a&b<c"), ("Sip", "sip:1001@pbx.example.com")]
    for noun in dial:
        assert noun.attrib == {"statusCallback": "https://p.example/s?a=1&b=2", "statusCallbackMethod": "POST",
                               "statusCallbackEvent": "initiated ringing answered completed"}


def test_redirect_and_say_twiml() -> None:
    """<Redirect method="POST"> carries the URL escaped; the fallback says a sentence and hangs up."""
    xml = redirect_twiml("https://app.example/twiml?x=1&y=<2>")
    redirect = ET.fromstring(xml).find("Redirect")
    assert redirect is not None and redirect.attrib == {"method": "POST"}
    assert redirect.text == "https://app.example/twiml?x=1&y=<2>" and "&amp;" in xml
    root = ET.fromstring(say_hangup_twiml("Sorry & bye"))
    assert [(n.tag, n.text) for n in root] == [("Say", "Sorry & bye"), ("Hangup", None)]


def test_the_webhook_seam_verifies_and_parses_one_request() -> None:
    """TwilioWebhook is a WebhookAdapter: verify then parse, as the generic webhook does."""
    adapter = TwilioWebhook(TOKEN, URL, "status")
    body = form({**LEG, "CallStatus": "ringing"})
    adapter.verify({"x-twilio-signature": sign(URL, {**LEG, "CallStatus": "ringing"})}, body, now=0)
    assert [e.event for e in adapter.parse({}, body)] == [EventKind.RINGING]
    with pytest.raises(SignatureError):
        adapter.verify({}, body, now=0)


# -- the HTTP routes, in process ---------------------------------------------------------------------
PW = hash_password("pw")
VOICE, STATUS = "/telephony/twilio/voice", "/telephony/twilio/status"
BASE = "http://testserver"
CONFIG = {
    "agents": [
        {"id": "alice", "password_hash": PW, "extensions": ["1001"], "addresses": ["client:alice"]},
        {"id": "bob", "password_hash": PW, "addresses": ["sip:bob@pbx.example.com", "client:bob"]},
        {"id": "carol", "password_hash": PW, "extensions": ["1003"]},
    ],
    "telephony": {"twilio": {"numbers": {"+1 (888) 555-0100": ["bob", "carol"], "+12025550100": ["carol"]},
                             "default_agents": ["alice", "bob"], "ring_timeout_s": 20}},
}


def make_client(**settings: Any) -> TestClient:
    values: dict[str, Any] = {"twilio_auth_token": TOKEN, "session_secret": "s" * 32, **settings}
    return TestClient(create_app(Settings(**values), config=parse_config(CONFIG)), base_url=BASE)


@pytest.fixture
def client() -> Iterator[TestClient]:
    with make_client() as c:
        yield c


def post(client: TestClient, path: str, params: dict[str, str], signed_url: str | None = None,
         token: str = TOKEN) -> Any:
    signature = sign(signed_url or BASE + path, params, token)
    return client.post(path, content=form(params), headers={"X-Twilio-Signature": signature, "Content-Type": FORM})


def call(to: str = "+18005550100", sid: str = "CA1") -> dict[str, str]:
    return {"CallSid": sid, "From": "+14155550100", "To": to, "CallStatus": "ringing", "Direction": "inbound"}


def test_voice_dials_the_default_agents_with_callbacks_to_screenpop(client: TestClient) -> None:
    """An unlisted number dials default_agents' Twilio addresses; callbacks point at /telephony/twilio/status."""
    r = post(client, VOICE, call())
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    dial = ET.fromstring(r.text).find("Dial")
    assert dial is not None and dial.get("timeout") == "20"
    assert [(n.tag, n.text) for n in dial] == [("Client", "alice"), ("Sip", "sip:bob@pbx.example.com"),
                                               ("Client", "bob")]
    assert {n.get("statusCallback") for n in dial} == {BASE + STATUS}
    assert client.get("/healthz").json()["events"] == 1


def test_voice_dials_the_agents_of_a_listed_number(client: TestClient) -> None:
    """A number listed under telephony.twilio.numbers (any spelling of it) dials its own agents."""
    dial = ET.fromstring(post(client, VOICE, call("+18885550100")).text).find("Dial")
    assert dial is not None and [n.text for n in dial] == ["sip:bob@pbx.example.com", "bob"]


def test_voice_with_nobody_to_dial_says_sorry_and_hangs_up(client: TestClient) -> None:
    """carol has no Twilio address: the caller hears a message, and the call ends."""
    root = ET.fromstring(post(client, VOICE, call("+12025550100")).text)
    assert [n.tag for n in root] == ["Say", "Hangup"]


def test_voice_redirects_to_your_twiml_app_when_configured() -> None:
    """With SCREENPOP_TWILIO_REDIRECT_URL the answer is a POST redirect there."""
    with make_client(twilio_redirect_url="https://app.example/voice?a=1&b=2") as c:
        r = post(c, VOICE, call())
    assert r.status_code == 200 and "<Redirect method=\"POST\">https://app.example/voice?a=1&amp;b=2<" in r.text


def test_without_an_auth_token_twilio_is_refused_403() -> None:
    """No auth token configured: 403 saying which setting is missing."""
    with make_client(twilio_auth_token=None) as c:
        r = post(c, VOICE, call())
    assert r.status_code == 403
    assert r.json() == {"error": "Twilio is not configured (SCREENPOP_TWILIO_AUTH_TOKEN)"}


def test_bad_or_missing_signatures_are_403(client: TestClient) -> None:
    """Wrong token, tampered body or no header: 403 with a short reason, and no call is started."""
    assert post(client, VOICE, call(), token="x" * 32).status_code == 403
    r = client.post(VOICE, content=form(call()), headers={"Content-Type": FORM})
    assert r.status_code == 403 and "missing X-Twilio-Signature" in r.json()["error"]
    tampered = client.post(STATUS, content=form({**call(), "CallStatus": "completed"}),
                           headers={"X-Twilio-Signature": sign(BASE + STATUS, call()), "Content-Type": FORM})
    assert tampered.status_code == 403 and "does not match" in tampered.json()["error"]
    assert client.get("/healthz").json()["events"] == 0


def test_oversized_body_is_413(client: TestClient) -> None:
    """A body over 64 KiB is refused before it is read further."""
    big = {**call(), "Pad": "a" * 70_000}
    assert post(client, STATUS, big).status_code == 413


def test_the_public_url_is_what_must_be_signed() -> None:
    """Behind a proxy the configured public URL (plus path and query) is checked, not the request's own."""
    with make_client(twilio_public_url="https://pop.example.com/") as c:
        ok = post(c, VOICE + "?tenant=7", call(), signed_url="https://pop.example.com/telephony/twilio/voice?tenant=7")
        own = post(c, VOICE + "?tenant=7", call(), signed_url=BASE + VOICE + "?tenant=7")
    assert ok.status_code == 200 and own.status_code == 403
    dial = ET.fromstring(ok.text).find("Dial")
    assert dial is not None and dial[0].get("statusCallback") == "https://pop.example.com/telephony/twilio/status"


def test_a_json_status_callback_with_body_sha256_is_accepted(client: TestClient) -> None:
    """The JSON variant works through the route: the signature covers the URL with bodySHA256."""
    body = json.dumps({"CallSid": "CAj", "From": "+14155550100", "CallStatus": "ringing"}).encode()
    path = f"{STATUS}?bodySHA256={hashlib.sha256(body).hexdigest()}"
    r = client.post(path, content=body, headers={"X-Twilio-Signature": sign(BASE + path, {}),
                                                 "Content-Type": "application/json"})
    assert r.status_code == 204 and client.get("/healthz").json()["events"] == 1


def until(ws: Any, kind: str, limit: int = 10) -> dict[str, Any]:
    """The first message of type `kind` among the next `limit` messages."""
    for _ in range(limit):
        message = ws.receive_json()
        if message["type"] == kind:
            return message
    raise AssertionError(f"no {kind} message within {limit} messages")


def test_status_callbacks_ring_answer_and_end_the_call_for_alice(client: TestClient) -> None:
    """Voice, then alice's leg ringing and in-progress, bob's leg canceled, the call completed."""
    tokens = {}
    for user in ("alice", "bob"):
        tokens[user] = client.post("/api/login", json={"username": user, "password": "pw"}).json()["token"]
    client.cookies.clear()
    with client.websocket_connect("/ws/agent", headers={"Authorization": f"Bearer {tokens['alice']}"}) as a, \
            client.websocket_connect("/ws/agent", headers={"Authorization": f"Bearer {tokens['bob']}"}) as b:
        assert a.receive_json()["type"] == "snapshot" and b.receive_json()["type"] == "snapshot"
        assert post(client, VOICE, call(sid="CAp")).status_code == 200
        leg = {"ParentCallSid": "CAp", "From": "+14155550100", "Direction": "outbound-dial"}
        alice = {**leg, "CallSid": "CAa", "To": "client:alice"}
        bobs = {**leg, "CallSid": "CAb", "To": "sip:bob@pbx.example.com"}
        for params in ({**alice, "CallStatus": "initiated"}, {**alice, "CallStatus": "ringing"},
                       {**bobs, "CallStatus": "ringing"}, {**alice, "CallStatus": "on-hold"}):
            assert post(client, STATUS, params).status_code == 204
        assert until(a, "call.ringing")["call"]["call_id"] == "CAp"
        assert until(b, "call.ringing")["call"]["caller"]["e164"] == "+14155550100"
        post(client, STATUS, {**alice, "CallStatus": "in-progress"})
        assert until(a, "call.answered") == {"type": "call.answered", "call_id": "CAp", "agent": "alice"}
        assert until(b, "call.withdrawn")["call_id"] == "CAp"
        post(client, STATUS, {**bobs, "CallStatus": "canceled"})
        post(client, STATUS, {**alice, "CallStatus": "completed"})
        post(client, STATUS, {"CallSid": "CAp", "From": "+14155550100", "To": "+18005550100",
                              "CallStatus": "completed"})
        seen: list[dict[str, Any]] = []
        for _ in range(10):
            seen.append(a.receive_json())
            if seen[-1]["type"] == "call.ended":
                break
        assert seen[-1] == {"type": "call.ended", "call_id": "CAp", "reason": "the call ended"}
        assert "call.withdrawn" not in [m["type"] for m in seen]  # her own completed leg kept her card
