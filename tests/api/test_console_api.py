"""The console's API in process: its settings, the search by hand and attaching a call, the wrap-up over the
socket with its `wrapup.state` answer, the wrap-ups of a call (a transfer's notes), and clear 4xx answers."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from screenpop.app import create_app
from screenpop.auth import hash_password
from screenpop.config import parse_config
from screenpop.settings import Settings
from telephony.generic import sign

SECRET = "hook-secret"
PW = hash_password("pw")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """screenpop with a CSV identity source (searchable), links, and no journal connector (local history)."""
    path = tmp_path / "customers.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["phone", "id", "name", "company"])
        w.writerow(["+14155550100", "C1", "Ada Lovelace", "Analytical Engines"])
        w.writerow(["+14155550111", "C2", "Grace Hopper", "Cobol & Co"])
    config = {
        "agents": [{"id": "alice", "name": "Alice", "password_hash": PW, "extensions": ["1001"]},
                   {"id": "bob", "name": "Bob", "password_hash": PW, "extensions": ["1002"]}],
        "connectors": [{"name": "customers", "kind": "csv", "role": "identity",
                        "options": {"path": str(path), "key_column": "phone"},
                        "links": [{"label": "Open in CRM", "url": "https://crm.example.com/c/{customer_id}"}]}],
        "wrapup": {"dispositions": ["resolved", {"id": "callback", "label": "Call back"}], "history": 3},
        "console": {"new_customer_url": "https://crm.example.com/new?phone={phone}",
                    "translations": {"sv": {"Call back": "Ring tillbaka"}}},
    }
    settings = Settings(webhook_secret=SECRET, session_secret="s" * 32, data_dirs=[str(tmp_path)])
    app = create_app(settings, config=parse_config(config))
    with TestClient(app, base_url="http://testserver") as c:
        yield c


def event(client: TestClient, **fields: Any) -> None:
    body = json.dumps({"caller": "+14155550199", **fields}).encode()
    r = client.post("/telephony/webhook", content=body,
                    headers={"X-Screenpop-Signature": sign(body, SECRET), "Content-Type": "application/json"})
    assert r.status_code == 202, r.text


def auth(client: TestClient, user: str) -> dict[str, str]:
    r = client.post("/api/login", json={"username": user, "password": "pw"})
    return {"Authorization": f"Bearer {r.json()['token']}"}


def until(ws: Any, kind: str) -> dict[str, Any]:
    for _ in range(50):
        m = ws.receive_json()
        if m.get("type") == kind:
            return dict(m)
    raise AssertionError(f"no {kind}")


def test_console_settings_come_from_the_config(client: TestClient) -> None:
    """Dispositions (labelled), the identity's links under `customer`, the new-customer link, translations."""
    r = client.get("/api/console", headers=auth(client, "alice"))
    body = r.json()
    assert body["dispositions"] == [{"id": "resolved", "label": "Resolved"}, {"id": "callback", "label": "Call back"}]
    assert body["links"] == {"customer": [{"label": "Open in CRM", "url": "https://crm.example.com/c/{customer_id}"}]}
    assert body["search"] is True and body["journal"] is False
    assert body["new_customer_url"] == "https://crm.example.com/new?phone={phone}"
    assert body["translations"] == {"sv": {"Call back": "Ring tillbaka"}}
    client.cookies.clear()
    assert client.get("/api/console").status_code == 401


def test_search_finds_by_name_company_or_digits_and_refuses_short_text(client: TestClient) -> None:
    """`q` matches a name, a company or digits of a number; one character is a 400 with a reason."""
    h = auth(client, "alice")
    assert [c["id"] for c in client.get("/api/search?q=hopper", headers=h).json()["customers"]] == ["C2"]
    assert [c["id"] for c in client.get("/api/search?q=analytical", headers=h).json()["customers"]] == ["C1"]
    assert {c["id"] for c in client.get("/api/search?q=555-01", headers=h).json()["customers"]} == {"C1", "C2"}
    r = client.get("/api/search?q=a", headers=h)
    assert r.status_code == 400 and "at least 2" in r.json()["error"]


def test_an_unknown_caller_attached_to_the_customer_found_fills_the_card(client: TestClient) -> None:
    """alice attaches the unknown caller to Grace (found by "hopper"): the customer section says so; bob,
    who does not have the call, is refused; a customer the search does not return is a 409."""
    h = auth(client, "alice")
    with client.websocket_connect("/ws/agent", headers=h) as ws:
        until(ws, "snapshot")
        event(client, call_id="u1", event="ringing", agents=["1001"])
        until(ws, "call.ringing")
        for _ in range(100):  # the identity lookup settles ("none") before a choice is taken
            r = client.post("/api/calls/u1/attach", json={"customer_id": "C1", "q": "hopper"}, headers=h)
            if "still running" not in r.text:
                break
        assert r.status_code == 409 and "not among" in r.json()["error"]
        r = client.post("/api/calls/u1/attach", json={"customer_id": "C2", "q": "bob"}, headers=auth(client, "bob"))
        assert r.status_code == 409
        r = client.post("/api/calls/u1/attach", json={"customer_id": "C2", "q": "hopper"}, headers=h)
        assert r.status_code == 202, r.text
        section = until(ws, "card.section")
        while (section.get("data") or {}).get("match") != "selected":
            section = until(ws, "card.section")
        assert section["data"]["customer"]["name"] == "Grace Hopper"
    r = client.post("/api/calls/u1/attach", json={"customer_id": "C2"}, headers=h)
    assert r.status_code == 422 and "q" in r.json()["error"]


def test_a_wrapup_over_the_socket_is_answered_and_carried_to_the_next_agent(client: TestClient) -> None:
    """alice's draft is what bob sees after the transfer; her saved wrap-up is `local` (no journal connector);
    a bad disposition is refused with a reason; bob cannot read a call he never had."""
    ha, hb = auth(client, "alice"), auth(client, "bob")
    with client.websocket_connect("/ws/agent", headers=ha) as ws:
        until(ws, "snapshot")
        event(client, call_id="t1", event="ringing", agents=["1001"], caller="+14155550100")
        until(ws, "call.ringing")
        event(client, call_id="t1", event="answered", agents=["1001"], caller="+14155550100")
        assert client.get("/api/calls/t1/wrapups", headers=hb).status_code == 404
        ws.send_json({"type": "wrapup.draft", "call_id": "t1", "notes": "Asked about invoice 42"})
        ws.send_json({"type": "wrapup", "call_id": "t1", "notes": "x", "disposition": "nope"})
        refused = until(ws, "wrapup.state")
        assert refused["state"] == "refused" and "unknown disposition" in refused["last_error"]
        event(client, call_id="t1", event="ringing", agents=["1002"], caller="+14155550100")  # the transfer
        rows = client.get("/api/calls/t1/wrapups", headers=hb).json()["wrapups"]
        assert [(r["agent"], r["state"], r["notes"]) for r in rows] == [("alice", "draft", "Asked about invoice 42")]
        ws.send_json({"type": "wrapup", "call_id": "t1", "notes": "Asked about invoice 42", "disposition": "callback",
                      "follow_up": "2026-12-01"})
        saved = until(ws, "wrapup.state")
        assert (saved["state"], saved["disposition"], saved["follow_up"]) == ("local", "callback", "2026-12-01")


def test_search_without_a_searchable_identity_source_is_409_not_a_server_error(tmp_path: Path) -> None:
    """An identity source that cannot search (an http one without `search_url`), or none at all: the search
    and the attach answer 409 saying so, not a 5xx."""
    for connectors in ([], [{"name": "customers", "kind": "http", "role": "identity",
                             "options": {"url": "http://127.0.0.1:9/c/{phone}"}}]):
        config = {"agents": [{"id": "alice", "name": "Alice", "password_hash": PW, "extensions": ["1001"]}],
                  "connectors": connectors}
        settings = Settings(webhook_secret=SECRET, session_secret="s" * 32, data_dirs=[str(tmp_path)])
        with TestClient(create_app(settings, config=parse_config(config)), base_url="http://testserver") as c:
            r = c.post("/api/login", json={"username": "alice", "password": "pw"})
            assert r.status_code == 200, r.text
            found = c.get("/api/search", params={"q": "Ada"})
            assert found.status_code == 409 and "search is not available" in found.json()["error"], found.text
            attach = c.post("/api/calls/c1/attach", json={"customer_id": "C1", "q": "Ada"})
            assert attach.status_code == 409, attach.text
