"""Sessions end: logout, expiry and an administrator's revocation end the token and close live sockets;
sockets per agent are capped; with Redis every instance agrees."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from screenpop.app import create_app
from screenpop.auth import hash_password
from screenpop.config import parse_config
from screenpop.sessions import SESSION_ENDED
from screenpop.settings import Settings

PW = hash_password("pw")
CONFIG = parse_config({"agents": [{"id": "ada", "password_hash": PW, "role": "admin"},
                                  {"id": "alice", "password_hash": PW, "extensions": ["1001"]}]})


def make(**settings: Any) -> TestClient:
    return TestClient(create_app(Settings(webhook_secret="w", **settings), config=CONFIG))


@pytest.fixture
def client() -> Iterator[TestClient]:
    with make() as c:
        yield c


def login(c: TestClient, user: str = "alice") -> str:
    r = c.post("/api/login", json={"username": user, "password": "pw"})
    assert r.status_code == 200, r.text
    token: str = r.json()["token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def closed_with(c: TestClient, token: str, then: Any) -> tuple[int, str]:
    """Open a socket with `token`, read its snapshot, run `then()`, and return the code and reason it closes with."""
    with c.websocket_connect("/ws/agent", headers=bearer(token)) as ws:
        assert ws.receive_json()["type"] == "snapshot"
        then()
        with pytest.raises(WebSocketDisconnect) as info:
            while True:
                ws.receive_json()
    return info.value.code, info.value.reason


def test_logout_ends_the_token_and_closes_the_socket(client: TestClient) -> None:
    """After POST /api/logout the token is refused by the API and its open socket is closed with 4401."""
    token = login(client)
    assert client.get("/api/me", headers=bearer(token)).status_code == 200
    code, reason = closed_with(client, token, lambda: client.post("/api/logout", headers=bearer(token)))
    assert (code, reason) == (SESSION_ENDED, "session ended: log in again")
    assert client.get("/api/me", headers=bearer(token)).status_code == 401
    with client.websocket_connect("/ws/agent", headers=bearer(token)) as ws, pytest.raises(WebSocketDisconnect):
        ws.receive_json()


def test_an_expired_session_closes_its_live_socket() -> None:
    """When the session's TTL passes, the socket that was opened with it closes with 4401 (no more cards)."""
    with make(session_ttl_s=1) as c:
        token = login(c)
        code, _ = closed_with(c, token, lambda: None)
        assert code == SESSION_ENDED
        assert c.get("/api/me", headers=bearer(token)).status_code == 401


def test_an_admin_ends_every_session_of_an_agent(client: TestClient) -> None:
    """DELETE /api/admin/agents/{id}/sessions (204) ends the agent's tokens and closes their sockets."""
    admin, first, second = login(client, "ada"), login(client), login(client)
    assert client.delete("/api/admin/agents/alice/sessions", headers=bearer(first)).status_code == 403

    def revoke() -> None:
        assert client.delete("/api/admin/agents/ALICE/sessions", headers=bearer(admin)).status_code == 204

    assert closed_with(client, first, revoke)[0] == SESSION_ENDED
    assert client.get("/api/me", headers=bearer(second)).status_code == 401
    assert client.get("/api/me", headers=bearer(admin)).status_code == 200


def test_sockets_per_agent_are_capped() -> None:
    """With SCREENPOP_MAX_SOCKETS_PER_AGENT=2 a third socket of the same agent is closed with a reason."""
    with make(max_sockets_per_agent=2) as c:
        token = login(c)
        with c.websocket_connect("/ws/agent", headers=bearer(token)) as a, \
                c.websocket_connect("/ws/agent", headers=bearer(token)) as b:
            assert a.receive_json()["type"] == b.receive_json()["type"] == "snapshot"
            with c.websocket_connect("/ws/agent", headers=bearer(token)) as third, \
                    pytest.raises(WebSocketDisconnect) as info:
                third.receive_json()
            assert info.value.code == 1008 and "too many sockets" in info.value.reason


def test_with_redis_every_instance_agrees(redis_url: str) -> None:
    """Two instances on one Redis: a login on one works on the other; a logout on one ends it on both."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    with make(bus_url=redis_url, bus_prefix=prefix) as one, make(bus_url=redis_url, bus_prefix=prefix) as two:
        token = login(one)
        assert two.get("/api/me", headers=bearer(token)).status_code == 200
        assert one.post("/api/logout", headers=bearer(token)).status_code == 204
        assert two.get("/api/me", headers=bearer(token)).status_code == 401
