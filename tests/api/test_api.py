"""The HTTP and websocket API in process: webhook contract, login, socket auth and routing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.routing import Router
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from screenpop.app import create_app
from screenpop.auth import hash_password
from screenpop.config import parse_config
from screenpop.settings import Settings
from telephony.generic import sign

SECRET = "hook-secret"
PW = hash_password("pw")
CONFIG = {
    "agents": [
        {"id": "alice", "name": "Alice", "password_hash": PW, "extensions": ["1001"], "addresses": ["client:alice"]},
        {"id": "bob", "name": "Bob", "password_hash": PW, "extensions": ["1002"]},
    ],
}


@pytest.fixture
def client() -> Iterator[TestClient]:
    settings = Settings(webhook_secret=SECRET, session_secret="s" * 32)
    app = create_app(settings, config=parse_config(CONFIG))
    with TestClient(app, base_url="http://testserver") as c:
        yield c


def post_event(client: TestClient, secret: str = SECRET, **fields: Any):
    body = json.dumps({"caller": "+14155550100", **fields}).encode()
    return client.post("/telephony/webhook", content=body,
                       headers={"X-Screenpop-Signature": sign(body, secret), "Content-Type": "application/json"})


def login(client: TestClient, user: str) -> str:
    r = client.post("/api/login", json={"username": user, "password": "pw"})
    assert r.status_code == 200, r.text
    return r.json()["token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- webhook -------------------------------------------------------------------------------------
def test_signed_event_is_accepted_with_202(client: TestClient) -> None:
    """A correctly signed event is answered 202."""
    r = post_event(client, call_id="c1", event="offered")
    assert r.status_code == 202 and r.json() == {"accepted": 1}


def test_wrong_signature_is_401_with_a_message(client: TestClient) -> None:
    """A request signed with another secret is refused with 401 and a JSON reason."""
    r = post_event(client, secret="nope", call_id="c1", event="offered")
    assert r.status_code == 401 and "does not match" in r.json()["error"]


def test_old_signature_is_a_replay(client: TestClient) -> None:
    """A signature from ten minutes ago is refused."""
    body = b'{"call_id":"c1","event":"offered","caller":"1"}'
    r = client.post("/telephony/webhook", content=body,
                    headers={"X-Screenpop-Signature": sign(body, SECRET, int(time.time()) - 600)})
    assert r.status_code == 401 and "away from server time" in r.json()["error"]


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (b"{oops", 400, "not valid JSON"),
        (b'{"call_id":"c","event":"boom","caller":"1"}', 422, "expected one of"),
        (b'{"event":"offered","caller":"1"}', 422, "call_id"),
    ],
)
def test_bad_bodies_get_4xx_json(client: TestClient, body: bytes, status: int, text: str) -> None:
    """Malformed JSON is 400, a bad event or missing field 422, each with a message."""
    r = client.post("/telephony/webhook", content=body, headers={"X-Screenpop-Signature": sign(body, SECRET)})
    assert r.status_code == status and text in r.json()["error"]


def test_oversized_body_is_413(client: TestClient) -> None:
    """A body over 64 KiB is refused before it is parsed."""
    body = b'{"x":"' + b"a" * 70_000 + b'"}'
    r = client.post("/telephony/webhook", content=body, headers={"X-Screenpop-Signature": sign(body, SECRET)})
    assert r.status_code == 413 and "larger than" in r.json()["error"]


# -- login ---------------------------------------------------------------------------------------
def test_login_sets_a_strict_httponly_cookie(client: TestClient) -> None:
    """Login answers a token and an HttpOnly, SameSite=strict session cookie."""
    r = client.post("/api/login", json={"username": "alice", "password": "pw"})
    assert r.status_code == 200
    assert r.json()["agent"] == {"id": "alice", "name": "Alice", "role": "agent"}
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert client.get("/api/me").json()["extensions"] == ["1001"]


@pytest.mark.parametrize(
    ("payload", "status"),
    [({"username": "alice", "password": "bad"}, 401), ({"username": "alice"}, 422), ("[", 400)],
)
def test_bad_logins_get_a_clear_answer(client: TestClient, payload: Any, status: int) -> None:
    """Wrong password is 401, a missing field 422, broken JSON 400, each with an error message."""
    kw = {"content": payload} if isinstance(payload, str) else {"json": payload}
    r = client.post("/api/login", **kw)
    assert r.status_code == status and r.json()["error"]


def test_me_needs_a_session(client: TestClient) -> None:
    """Without a session /api/me is 401; the demo call route does not exist outside demo mode."""
    assert client.get("/api/me").status_code == 401
    token = login(client, "alice")
    client.cookies.clear()
    assert client.post("/api/demo/call", json={"number": "1"}, headers=bearer(token)).status_code == 404


# -- socket --------------------------------------------------------------------------------------
def test_socket_without_credentials_is_closed_1008(client: TestClient) -> None:
    """An unauthenticated socket is closed with 1008 before any data."""
    with client.websocket_connect("/ws/agent") as ws, pytest.raises(WebSocketDisconnect) as info:
        ws.receive_json()
    assert info.value.code == 1008


def test_cookie_socket_from_a_foreign_origin_is_closed_1008(client: TestClient) -> None:
    """A browser page of another site cannot ride the agent's cookie."""
    login(client, "alice")
    with client.websocket_connect("/ws/agent", headers={"Origin": "http://evil.example"}) as ws:
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json()
    assert info.value.code == 1008


def test_cookie_socket_from_the_same_origin_gets_a_snapshot(client: TestClient) -> None:
    """The console's own origin with the session cookie connects and gets an empty snapshot."""
    login(client, "alice")
    with client.websocket_connect("/ws/agent", headers={"Origin": "http://testserver"}) as ws:
        assert ws.receive_json() == {"type": "snapshot", "calls": []}


def test_card_goes_only_to_the_ringing_agent(client: TestClient) -> None:
    """alice (1001) gets the card; bob's first message after the snapshot is his own call, not hers."""
    ta, tb = login(client, "alice"), login(client, "bob")
    client.cookies.clear()
    with client.websocket_connect("/ws/agent", headers=bearer(ta)) as a, \
            client.websocket_connect("/ws/agent", headers=bearer(tb)) as b:
        assert a.receive_json()["type"] == "snapshot" and b.receive_json()["type"] == "snapshot"
        assert post_event(client, call_id="ca", event="ringing", agents=["1001"]).status_code == 202
        msg = a.receive_json()
        assert msg["type"] == "call.ringing" and msg["call"]["call_id"] == "ca"
        assert msg["call"]["caller"]["e164"] == "+14155550100"
        post_event(client, call_id="cb", event="ringing", agents=["1002"], caller="+14155550111")
        assert b.receive_json()["call"]["call_id"] == "cb"


def test_duplicate_event_pops_once_and_two_tabs_both_get_it(client: TestClient) -> None:
    """The same ringing twice gives one card, delivered to both of alice's tabs."""
    token = login(client, "alice")
    client.cookies.clear()
    with client.websocket_connect("/ws/agent", headers=bearer(token)) as t1, \
            client.websocket_connect("/ws/agent", headers=bearer(token)) as t2:
        t1.receive_json(), t2.receive_json()
        post_event(client, call_id="c1", event="ringing", agents=["client:alice"])
        post_event(client, call_id="c1", event="ringing", agents=["client:alice"])
        post_event(client, call_id="c1", event="ended")
        for tab in (t1, t2):
            ringing, ended = tab.receive_json(), tab.receive_json()
            # no identity source: the customer section is settled (unavailable) in the card itself;
            # then ended, and no second ringing
            assert (ringing["type"], ended["type"]) == ("call.ringing", "call.ended")
            assert ringing["call"]["sections"][0]["status"] == "unavailable"


def test_reconnect_during_ringing_gets_the_card_in_the_snapshot(client: TestClient) -> None:
    """A reload while the phone rings shows the card again at once."""
    token = login(client, "alice")
    client.cookies.clear()
    with client.websocket_connect("/ws/agent", headers=bearer(token)) as ws:
        ws.receive_json()
        post_event(client, call_id="c9", event="ringing", agents=["1001"])
        ws.receive_json()
    with client.websocket_connect("/ws/agent", headers=bearer(token)) as ws:
        snap = ws.receive_json()
        assert snap["type"] == "snapshot" and [c["call_id"] for c in snap["calls"]] == ["c9"]
        assert snap["calls"][0]["sections"][0]["status"] == "unavailable"


def test_answer_withdraws_the_card_from_the_other_agent(client: TestClient) -> None:
    """Ring-all to alice and bob; alice answers; bob's card is withdrawn, alice's answered."""
    ta, tb = login(client, "alice"), login(client, "bob")
    client.cookies.clear()
    with client.websocket_connect("/ws/agent", headers=bearer(ta)) as a, \
            client.websocket_connect("/ws/agent", headers=bearer(tb)) as b:
        a.receive_json(), b.receive_json()
        post_event(client, call_id="rg", event="ringing", agents=["1001", "1002"])
        a.receive_json(), b.receive_json()  # the card, its customer section settled (no identity source)
        post_event(client, call_id="rg", event="answered", agents=["1001"])
        assert a.receive_json() == {"type": "call.answered", "call_id": "rg", "agent": "alice"}
        withdrawn = b.receive_json()
        assert withdrawn["type"] == "call.withdrawn" and withdrawn["call_id"] == "rg"


def test_metrics_count_events_pops_and_acks(client: TestClient) -> None:
    """/metrics shows events received, a pop latency sample and the display latency after an ack."""
    token = login(client, "alice")
    client.cookies.clear()
    with client.websocket_connect("/ws/agent", headers=bearer(token)) as ws:
        ws.receive_json()
        post_event(client, call_id="m1", event="ringing", agents=["1001"])
        ws.receive_json()
        ws.send_json({"type": "ack", "call_id": "m1"})
        ws.send_json({"type": "ack", "call_id": "m1"})  # a second ack is not counted twice
        post_event(client, call_id="m1", event="ended")
        assert ws.receive_json()["type"] == "call.ended"
    for _ in range(100):  # the ack is handled by the socket's task: wait for it, bounded
        text = client.get("/metrics").text
        if "screenpop_display_latency_seconds_count 1.0" in text:
            break
        time.sleep(0.02)
    assert 'screenpop_call_events_total{event="ringing"} 1.0' in text
    assert "screenpop_pop_latency_seconds_count 1.0" in text
    assert "screenpop_display_latency_seconds_count 1.0" in text
    assert 'screenpop_messages_delivered_total{type="call.ringing"} 1.0' in text
    assert "pw" not in text and "+1415" not in text


def test_openapi_describes_every_request_body(client: TestClient) -> None:
    """Every POST, PUT and PATCH but logout (which takes none) has its body in the API document, with a schema
    that resolves: a schema-based fuzzer reaches every body."""
    doc = client.get("/api/openapi.json").json()
    missing = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if method in ("post", "put", "patch") and path != "/api/logout":
                content = op.get("requestBody", {}).get("content", {})
                schemas = [c.get("schema", {}) for c in content.values()]
                refs = [s["$ref"].rsplit("/", 1)[1] for s in schemas if "$ref" in s]
                if not schemas or any(r not in doc["components"]["schemas"] for r in refs):
                    missing.append(f"{method.upper()} {path}")
    assert missing == []


# -- the application: hot routes in front of FastAPI ---------------------------------------------
def test_create_app_is_a_starlette_router(client: TestClient) -> None:
    """create_app returns a real Starlette Router (no proxy), with the running services in its state."""
    assert isinstance(client.app, Router)
    assert client.app.state.services.registry is not None  # type: ignore[attr-defined]


def test_openapi_describes_the_webhook_once(client: TestClient) -> None:
    """The API document lists the webhook with its CallEvent body, its signature header and its answers."""
    doc = client.get("/api/openapi.json").json()
    (method,) = doc["paths"]["/telephony/webhook"]
    op = doc["paths"]["/telephony/webhook"][method]
    assert method == "post" and op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("CallEvent")
    assert [p["name"] for p in op["parameters"]] == ["x-screenpop-signature"]
    assert {"202", "400", "401", "413", "422"} <= set(op["responses"])
    assert "call_id" in doc["components"]["schemas"]["CallEvent"]["properties"]
    assert client.get("/api/openapi.json").json() == doc  # built once: asking again changes nothing


def test_webhook_other_methods_get_405_json(client: TestClient) -> None:
    """A GET on the webhook is 405 with Allow: POST and the API's JSON error."""
    r = client.get("/telephony/webhook")
    assert r.status_code == 405 and r.headers["allow"] == "POST" and "POST" in r.json()["error"]


def test_a_crash_on_the_webhook_is_a_500_json(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected error while handling an event answers 500 `internal error`, no stack trace."""
    async def boom(event: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(client.app.state.services.registry, "handle", boom)  # type: ignore[attr-defined]
    r = post_event(client, call_id="c1", event="offered")
    assert (r.status_code, r.json()) == (500, {"error": "internal error"})


def test_fastapi_errors_answer_the_same_json_error(client: TestClient) -> None:
    """FastAPI's own errors (an unknown path, a body of the wrong shape) are the same `{"error": ...}`."""
    assert client.get("/nowhere").json() == {"error": "Not Found"}
    r = client.post("/api/login", content=b"[1, 2]")
    assert r.status_code == 422 and r.json()["error"].startswith("body: ")
