"""The admin console's API in process: roles and pages, agents at run time, kinds, waterfall, import/export,
the access audit, the live view, and masking by role on the agent socket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from starlette.testclient import TestClient

from screenpop.app import create_app
from screenpop.auth import hash_password
from screenpop.config import parse_config
from screenpop.models import CallEvent, EventKind
from screenpop.settings import Settings
from tests.conftest import serve_in_thread

PW = hash_password("pw")


def config(base: str = "http://127.0.0.1:9") -> dict[str, Any]:
    return {
        "agents": [
            {"id": "ada", "password_hash": PW, "role": "admin"},
            {"id": "sam", "password_hash": PW, "role": "supervisor"},
            {"id": "alice", "password_hash": PW, "extensions": ["1001"]},
        ],
        "connectors": [
            {"name": "people", "kind": "http", "role": "identity",
             "options": {"url": f"{base}/people?phone={{phone}}"},
             "masking": [{"field": "email", "rule": "email", "unmasked_for": ["admin"]}]},
            {"name": "balance", "kind": "http", "role": "section",
             "options": {"url": f"{base}/balance/{{customer_id}}"},
             "masking": [{"field": "iban", "rule": "last4"}]},
        ],
    }


def make(tmp_path: Path, base: str = "http://127.0.0.1:9") -> TestClient:
    settings = Settings(webhook_secret="w", session_secret="s" * 32, state_url=f"sqlite:///{tmp_path / 'st.db'}")
    return TestClient(create_app(settings, config=parse_config(config(base))))


def login(c: TestClient, user: str, password: str = "pw") -> dict[str, str]:
    """Sign in (the client keeps the cookie); the bearer header of that session, for a second user."""
    r = c.post("/api/login", json={"username": user, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def bearer(c: TestClient, user: str, password: str = "pw") -> dict[str, str]:
    """A bearer header for `user`, the client's cookie left as it was."""
    r = c.post("/api/login", json={"username": user, "password": password})
    assert r.status_code == 200, r.text
    c.cookies.clear()
    return {"Authorization": f"Bearer {r.json()['token']}"}


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[TestClient]:
    with make(tmp_path) as c:
        login(c, "ada")
        yield c


@pytest.fixture
def backend() -> Iterator[str]:
    """A real HTTP back office in its own thread and event loop (the test's thread blocks on the sockets):
    one customer with an e-mail address, a balance with an IBAN, and a route that fails."""
    async def people(request: web.Request) -> web.Response:
        if request.query.get("phone") == "+14155550111":  # two customers share this number
            return web.json_response([{"id": "C2001", "name": "Ann Lee"}, {"id": "C2002", "name": "Bo Lee"}])
        if request.query.get("phone") != "+14155550100":
            return web.json_response([])
        return web.json_response([{"id": "C1001", "name": "Jane Roe", "email": "jane.roe@example.com"}])

    async def balance(request: web.Request) -> web.Response:
        return web.json_response({"balance": 12.5, "iban": "DE89370400440532013000"})

    async def fail(request: web.Request) -> web.Response:
        return web.json_response({"error": "boom"}, status=500)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.json_response({"late": True})

    app = web.Application()
    app.add_routes([web.get("/people", people), web.get("/balance/{id}", balance), web.get("/fail/{id}", fail),
                    web.get("/slow/{id}", slow)])
    with serve_in_thread(app) as url:
        yield url


def test_admin_page_by_role(tmp_path: Path) -> None:
    """/admin: sign-in redirect without a session, 403 with a link back for an agent, the console for an admin;
    the live view also opens for a supervisor."""
    with make(tmp_path) as c:
        r = c.get("/admin", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login"
        login(c, "alice")
        r = c.get("/admin")
        assert r.status_code == 403 and 'href="/"' in r.text
        assert c.get("/admin/live").status_code == 403
        login(c, "sam")
        assert c.get("/admin").status_code == 403
        assert c.get("/admin/live").status_code == 200
        assert c.get("/api/admin/live").status_code == 200
        assert c.get("/api/admin/agents").status_code == 403
        login(c, "ada")
        r = c.get("/admin")
        assert r.status_code == 200 and "/static/admin/js/admin.js" in r.text


def test_the_login_page_sends_a_signed_in_agent_home(tmp_path: Path) -> None:
    """The sign-in answers the role's home page (agent console, live view, admin console); /login shows the
    form without a session and with one goes straight home, so the page never asks the API and logs a
    refused request."""
    with make(tmp_path) as c:
        r = c.get("/login", follow_redirects=False)
        assert r.status_code == 200 and "<form" in r.text
        for user, home in (("alice", "/"), ("sam", "/admin/live"), ("ada", "/admin")):
            answer = c.post("/api/login", json={"username": user, "password": "pw"})
            assert answer.json()["home"] == home, user
            r = c.get("/login", follow_redirects=False)
            assert (r.status_code, r.headers.get("location")) == (303, home), user
        c.post("/api/logout", headers={"Origin": "http://testserver"})
        assert c.get("/login", follow_redirects=False).status_code == 200


def test_agent_created_signs_in_at_once_and_collisions_are_refused(admin: TestClient, tmp_path: Path) -> None:
    """A new agent signs in at once; a taken id or extension (in any case) is refused with the reason."""
    r = admin.post("/api/admin/agents", json={"id": "bob", "name": "Bob", "extensions": ["1002"],
                                              "password": "longpassword"})
    assert r.status_code == 201, r.text
    assert "password" not in r.text and r.json()["origin"] == "admin"
    for body, reason in (({"id": "BOB", "password": "longpassword"}, "same name"),
                         ({"id": "carl", "extensions": [" 1001 "], "password": "longpassword"}, "already belongs"),
                         ({"id": "dan", "addresses": ["Alice"], "password": "longpassword"}, "already belongs"),
                         ({"id": "eve"}, "password"),
                         ({"id": "fay", "password": "short"}, "password")):
        r = admin.post("/api/admin/agents", json=body)
        assert r.status_code == 422 and reason in r.json()["error"], (body, r.text)
    services = admin.app.state.services  # type: ignore[attr-defined]
    assert services.directory.resolve("1002") == "bob"
    bob = bearer(admin, "bob", "longpassword")
    assert admin.get("/api/me", headers=bob).json()["id"] == "bob"


def test_disable_reset_and_role_change(tmp_path: Path) -> None:
    """Disabling ends the agent's session; a reset password works; the audit lists the changes."""
    with make(tmp_path) as c:
        alice = bearer(c, "alice")
        ada = login(c, "ada")
        assert c.get("/api/me", headers=alice).status_code == 200
        body = c.get("/api/admin/agents/alice").json()
        assert body["origin"] == "file"
        r = c.put("/api/admin/agents/alice", json={**body, "disabled": True, "password": "a-new-password"})
        assert r.status_code == 200, r.text
        assert c.get("/api/me", headers=alice).status_code == 401
        assert c.post("/api/login", json={"username": "alice", "password": "a-new-password"}).status_code == 401
        login(c, "ada")
        c.put("/api/admin/agents/alice", json={**body, "disabled": False, "role": "supervisor"})
        alice = bearer(c, "alice", "a-new-password")
        assert c.get("/api/me", headers=alice).json()["role"] == "supervisor"
        actions = [e["action"] for e in c.get("/api/admin/audit", headers=ada).json()["entries"]]
        assert actions[:2] == ["agent.put", "agent.put"]
        assert c.put("/api/admin/agents/ada", json={"id": "ada", "role": "agent"}, headers=ada).status_code == 422
        assert c.delete("/api/admin/agents/nobody", headers=ada).status_code == 404


def test_disabling_or_deleting_an_agent_closes_their_open_socket(tmp_path: Path) -> None:
    """An agent disabled in the console loses the socket they hold at once (4401, back to login), not only
    their token; so does a deleted one."""
    from starlette.websockets import WebSocketDisconnect

    from screenpop.sessions import SESSION_ENDED

    with make(tmp_path) as c:
        for change in ("disable", "delete"):
            alice = bearer(c, "alice")
            ada = bearer(c, "ada")
            with c.websocket_connect("/ws/agent", headers=alice) as ws:
                assert ws.receive_json()["type"] == "snapshot"
                body = c.get("/api/admin/agents/alice", headers=ada).json()
                if change == "disable":
                    r = c.put("/api/admin/agents/alice", json={**body, "disabled": True}, headers=ada)
                else:
                    r = c.delete("/api/admin/agents/alice", headers=ada)
                assert r.status_code in (200, 204), r.text
                with pytest.raises(WebSocketDisconnect) as info:
                    while True:
                        ws.receive_json()
                assert info.value.code == SESSION_ENDED
            if change == "disable":
                back = c.put("/api/admin/agents/alice", json={**body, "disabled": False}, headers=ada)
                assert back.status_code == 200


def test_stored_agents_survive_a_restart(tmp_path: Path) -> None:
    """An agent created in the console is there after a restart on the same state store."""
    with make(tmp_path) as c:
        login(c, "ada")
        assert c.post("/api/admin/agents", json={"id": "zed", "password": "longpassword"}).status_code == 201
    with make(tmp_path) as c:
        login(c, "zed", "longpassword")


def test_kinds_give_the_schemas_with_secret_markers(admin: TestClient) -> None:
    """Every kind comes with its options' JSON schema; a secret is marked `format: password`."""
    body = admin.get("/api/admin/kinds").json()
    kinds = {k["kind"]: k for k in body["kinds"]}
    assert {"http", "sql", "csv", "offers"} <= set(kinds)
    text = json.dumps(kinds["http"]["options"])
    assert '"format": "password"' in text and "url" in kinds["http"]["options"]["properties"]
    assert "timeout_ms" in body["connector"]["properties"]


def test_waterfall_times_each_connector(tmp_path: Path, backend: str) -> None:
    """The waterfall: identity first, then each section starting after it, with status (a failing and a slow
    source each say so), cache, data, and the card as an agent sees it (masked)."""
    with make(tmp_path, backend) as c:
        login(c, "ada")
        r = c.put("/api/admin/connectors/broken", json={"kind": "http", "role": "section",
                                                        "options": {"url": f"{backend}/fail/{{customer_id}}"}})
        assert r.status_code == 201, r.text
        r = c.put("/api/admin/connectors/sluggish", json={"kind": "http", "role": "section", "timeout_ms": 200,
                                                          "options": {"url": f"{backend}/slow/{{customer_id}}"}})
        assert r.status_code == 201, r.text
        body = c.post("/api/admin/lookup/waterfall", json={"number": "+14155550100"})
        assert body.status_code == 200, body.text
        rows = {row["connector"]: row for row in body.json()["rows"]}
        assert rows["people"]["status"] == "ok" and rows["people"]["section"] == "customer"
        assert rows["balance"]["status"] == "ok" and rows["balance"]["data"]["iban"].startswith("DE89")
        assert rows["broken"]["status"] == "error" and "500" in rows["broken"]["reason"]
        assert rows["broken"]["start_ms"] >= rows["people"]["end_ms"] - 1
        assert rows["balance"]["cache"] == "off"
        assert rows["sluggish"]["status"] == "timeout" and rows["sluggish"]["reason"] == "no answer in time"
        card = body.json()["card"]
        assert card["customer"]["extra"]["email"] == "j\u2022\u2022\u2022@example.com"
        assert "jane.roe" not in json.dumps(card) and "0532013000" not in json.dumps(card)
        assert c.post("/api/admin/lookup/waterfall", json={"number": ""}).status_code == 422


def test_export_then_import_round_trip(admin: TestClient) -> None:
    """Export gives the YAML config format with secrets redacted; importing it back keeps the stored secrets;
    a secret that is no longer stored (the connector was deleted) must be entered again (422 naming it); a
    bad file changes nothing and says where."""
    admin.put("/api/admin/connectors/loyalty", json={"kind": "http", "options": {
        "url": "http://127.0.0.1:9/{customer_id}", "headers": {"X-Api-Key": "key-123"}}})
    text = admin.get("/api/admin/config.yaml").text
    assert "key-123" not in text and "loyalty" in text and "connectors:" in text
    services = admin.app.state.services  # type: ignore[attr-defined]
    r = admin.post("/api/admin/config", json={"yaml": text.replace("timeout_ms: 600", "timeout_ms: 700", 1)})
    assert r.status_code == 200, r.text
    assert "loyalty" in {s.name for s in services.lookup.sources}
    admin.delete("/api/admin/connectors/loyalty")
    gone = admin.post("/api/admin/config", json={"yaml": text})
    assert gone.status_code == 422 and "X-Api-Key" in gone.json()["error"] and "enter" in gone.json()["error"]
    assert "loyalty" not in {s.name for s in services.lookup.sources}
    again = admin.post("/api/admin/config", json={"yaml": text.replace("'********'", "key-123")})
    assert again.status_code == 200, again.text
    assert "loyalty" in {s.name for s in services.lookup.sources}
    bad = admin.post("/api/admin/config", json={"yaml": "connectors:\n  - name: x\n    kind: nope\n"})
    assert bad.status_code == 422 and "connectors[0]" in bad.json()["error"]
    assert admin.post("/api/admin/config", json={"yaml": "connectors: ["}).status_code == 400
    assert admin.post("/api/admin/config", json={"yaml": 3}).status_code == 422
    as_text = admin.post("/api/admin/config", content=text, headers={"Content-Type": "application/yaml"})
    assert as_text.status_code == 415  # a cookie-carried body must be JSON (CSRF), the file's text is for scripts


def test_masked_frames_and_access_audit(tmp_path: Path, backend: str) -> None:
    """An agent's socket never carries the e-mail or IBAN in clear while an admin's does; the access audit
    records who got and displayed the card, by customer, masked or not, and as CSV."""
    with make(tmp_path, backend) as c:
        login(c, "ada")
        services = c.app.state.services  # type: ignore[attr-defined]
        alice = bearer(c, "alice")
        login(c, "ada")
        with c.websocket_connect("/ws/agent", headers=alice) as ws_alice, c.websocket_connect("/ws/agent") as ws_ada:
            assert ws_alice.receive_json()["type"] == "snapshot"
            assert ws_ada.receive_json()["type"] == "snapshot"
            call = CallEvent(call_id="m1", event=EventKind.RINGING, caller="+14155550100", agents=["alice", "ada"])
            c.portal.call(services.registry.handle, call)  # type: ignore[union-attr]
            frames_alice, frames_ada = _frames_until_settled(ws_alice), _frames_until_settled(ws_ada)
            ws_alice.send_json({"type": "ack", "call_id": "m1"})
            assert "jane.roe@example.com" not in frames_alice and "0532013000" not in frames_alice
            assert "j\u2022\u2022\u2022@example.com" in frames_alice
            assert "jane.roe@example.com" in frames_ada and "0532013000" not in frames_ada  # (no role sees it)
            ws_alice.send_json({"type": "bye"})
            ws_alice.close()
        with c.websocket_connect("/ws/agent", headers=alice) as again:  # a new socket's snapshot is masked too
            snapshot = again.receive_text()
            assert '"m1"' in snapshot and "jane.roe@example.com" not in snapshot
            assert "j\u2022\u2022\u2022@example.com" in snapshot
        rows = c.get("/api/admin/access", params={"customer": "C1001"}).json()["entries"]
        seen = {(r["agent"], r["action"], r["masked"]) for r in rows}
        assert ("alice", "delivered", True) in seen and ("ada", "delivered", False) in seen
        assert ("alice", "displayed", True) in seen
        assert all("jane" not in json.dumps(r) for r in rows)
        csv = c.get("/api/admin/access.csv", params={"agent": "alice"}).text
        assert csv.startswith("time,agent,action") and "C1001" in csv and ",ada," not in csv
        assert c.get("/api/admin/access", headers=alice).status_code == 403


def _frames_until_settled(ws: Any) -> str:
    """Raw text frames until the card's balance section settles."""
    frames = []
    while True:
        text = ws.receive_text()
        frames.append(text)
        m = json.loads(text)
        if m.get("type") == "card.section" and m.get("name") == "balance":
            return "\n".join(frames)


def test_choosing_among_several_customers_is_audited(tmp_path: Path, backend: str) -> None:
    """An agent's `select` among several matches is an access row `chosen` with the customer picked."""
    with make(tmp_path, backend) as c:
        alice = bearer(c, "alice")
        login(c, "ada")
        services = c.app.state.services  # type: ignore[attr-defined]
        with c.websocket_connect("/ws/agent", headers=alice) as ws:
            assert ws.receive_json()["type"] == "snapshot"
            call = CallEvent(call_id="s1", event=EventKind.RINGING, caller="+14155550111", agents=["alice"])
            c.portal.call(services.registry.handle, call)  # type: ignore[union-attr]
            while True:
                m = ws.receive_json()
                if m.get("type") == "card.section" and m.get("name") == "customer":
                    assert m["data"]["match"] == "several"
                    break
            ws.send_json({"type": "select", "call_id": "s1", "customer_id": "C2002"})
            while True:  # the sections are fetched for the customer chosen
                m = ws.receive_json()
                if m.get("type") == "card.section" and m.get("name") == "balance" and m["status"] != "pending":
                    break
        rows = c.get("/api/admin/access", params={"customer": "C2002"}).json()["entries"]
        assert any(r["agent"] == "alice" and r["action"] == "chosen" for r in rows), rows


def test_a_journal_connector_changed_in_the_console_is_used_at_once(tmp_path: Path) -> None:
    """Changing the journal connector's target in the admin API moves the wrap-up deliveries to it without a
    restart (the old writer is closed); deleting it keeps wrap-ups in screenpop's own journal."""
    journal = {"kind": "http", "role": "journal", "options": {"url": "http://127.0.0.1:9/old/calls"}}
    with make(tmp_path) as c:
        login(c, "ada")
        assert c.put("/api/admin/connectors/crm", json=journal).status_code == 201
        services = c.app.state.services  # type: ignore[attr-defined]
        first = services.journal.writer
        assert first is not None and first.options.url.endswith("/old/calls")
        body = c.get("/api/admin/connectors/crm").json()
        body.pop("origin")
        body["options"]["url"] = "http://127.0.0.1:9/new/calls"
        assert c.put("/api/admin/connectors/crm", json=body).status_code == 200
        assert services.journal.writer is not first and services.journal.writer.options.url.endswith("/new/calls")
        assert first._session is None  # closed
        assert c.delete("/api/admin/connectors/crm").status_code == 204
        assert services.journal.writer is None
