"""No 500 on any input, logins that cannot be hammered, one canonical form for agent ids and addresses."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

import screenpop.auth
from screenpop.api import agents
from screenpop.app import create_app
from screenpop.auth import Directory, hash_password
from screenpop.config import ConfigError, parse_config
from screenpop.settings import Settings
from telephony.generic import sign

PW = hash_password("pw")
SECRET = "w"
AGENTS = [{"id": "ada", "password_hash": PW, "role": "admin"},
          {"id": "alice", "password_hash": PW, "addresses": ["client:Alice"]}]


def make(**settings: Any) -> TestClient:
    return TestClient(create_app(Settings(webhook_secret=SECRET, **settings), config=parse_config({"agents": AGENTS})))


@pytest.fixture
def admin() -> Iterator[TestClient]:
    with make() as c:
        assert c.post("/api/login", json={"username": "ada", "password": "pw"}).status_code == 200
        yield c


def test_deeply_nested_json_is_a_400_in_the_webhook_and_the_admin_api(admin: TestClient) -> None:
    """A signed webhook and an admin body nested 20,000 levels deep are refused with 400, not a 500."""
    deep = b"[" * 20_000 + b"]" * 20_000
    r = admin.post("/telephony/webhook", content=deep, headers={"X-Screenpop-Signature": sign(deep, SECRET),
                                                                "Content-Type": "application/json"})
    assert r.status_code == 400 and "error" in r.json(), r.text
    body = b'{"kind": "http", "options": {"x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}}"
    r = admin.put("/api/admin/connectors/deep", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "nested" in r.json()["error"], r.text
    r = admin.put("/api/admin/connectors/deep", json={"kind": "http", "options": {"x": [[[[[[[[[[[[[[[[[[
        [[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}})
    assert r.status_code == 400 and "nested more than 32" in r.json()["error"], r.text


def test_a_cache_that_is_not_a_mapping_is_a_422(admin: TestClient) -> None:
    """`cache: 1.5` next to `cache_ttl_s` is a 422 naming the field, not a TypeError."""
    r = admin.put("/api/admin/connectors/c", json={"kind": "http", "cache": 1.5, "cache_ttl_s": 5,
                                                   "options": {"url": "http://127.0.0.1:9/{phone}"}})
    assert r.status_code == 422 and "cache" in r.json()["error"], r.text


def test_binary_and_nested_socket_frames_close_with_a_code_and_reason(admin: TestClient) -> None:
    """A binary frame closes the socket with 1003, a frame nested too deeply with 1007, each with a reason."""
    for send, code, words in ((lambda ws: ws.send_bytes(b"\x00\x01"), 1003, "binary"),
                              (lambda ws: ws.send_text("[" * 5000 + "]" * 5000), 1007, "nested")):
        with admin.websocket_connect("/ws/agent") as ws:
            assert ws.receive_json()["type"] == "snapshot"
            send(ws)
            with pytest.raises(WebSocketDisconnect) as info:
                ws.receive_json()
            assert info.value.code == code and words in info.value.reason


def test_garbage_frames_are_logged_at_a_bounded_rate(admin: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    """Fifty frames that are not JSON write a line or two, not fifty."""
    caplog.set_level(logging.INFO, logger="screenpop.agents")
    agents._garbage.next = 0.0  # what earlier tests logged does not count
    with admin.websocket_connect("/ws/agent") as ws:
        assert ws.receive_json()["type"] == "snapshot"
        for i in range(50):
            ws.send_text(f"garbage {i}")
        ws.send_text('{"type": "ack", "call_id": "x"}')
    lines = [r for r in caplog.records if r.name == "screenpop.agents" and "not JSON" in r.getMessage()]
    assert 1 <= len(lines) <= 10


def test_ids_and_addresses_that_differ_only_in_case_are_refused() -> None:
    """check-config refuses `Alice` beside `alice`, and `client:alice` beside another agent's `client:Alice`."""
    with pytest.raises(ConfigError, match="same name as agent 'alice'"):
        parse_config({"agents": [*AGENTS, {"id": "Alice", "password_hash": PW}]})
    with pytest.raises(ConfigError, match="already belongs to 'alice'"):
        parse_config({"agents": [*AGENTS, {"id": "bob", "password_hash": PW, "addresses": ["client:alice "]}]})
    directory = Directory(parse_config({"agents": AGENTS}).agents)
    assert directory.resolve("CLIENT:alice") == "alice" and directory.get("ALICE") is not None


def test_failed_logins_are_throttled_with_429_and_retry_after() -> None:
    """Five wrong passwords for a user: the sixth try, even with the right password, is 429 with Retry-After;
    another user from the same address still gets an answer."""
    with make() as c:
        for _ in range(5):
            assert c.post("/api/login", json={"username": "alice", "password": "nope"}).status_code == 401
        r = c.post("/api/login", json={"username": "ALICE", "password": "pw"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0, r.text
        assert c.post("/api/login", json={"username": "ada", "password": "pw"}).status_code == 200


def test_a_burst_of_logins_hashes_a_few_passwords_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sixteen parallel logins never run more than SCREENPOP_LOGIN_HASHES_AT_ONCE argon2 checks at once
    (64 MiB each): memory stays bounded."""
    running, peak, lock = [0], [0], threading.Lock()
    verify = screenpop.auth._hasher.verify

    def counted(stored: str, password: str) -> bool:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            return verify(stored, password)
        finally:
            with lock:
                running[0] -= 1

    class Counting:
        def verify(self, stored: str, password: str) -> bool:
            return counted(stored, password)

    monkeypatch.setattr(screenpop.auth, "_hasher", Counting())
    with make(login_hashes_at_once=2, login_failures_per_address=1000) as c:
        def one(i: int) -> int:
            return c.post("/api/login", json={"username": f"user{i}", "password": "x"}).status_code

        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(one, range(16)))
    assert codes == [401] * 16
    assert 1 <= peak[0] <= 2
