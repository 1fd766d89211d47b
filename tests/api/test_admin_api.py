"""The admin API in process: authorization, validation, secret redaction, live reload, persistence."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from screenpop.app import create_app
from screenpop.auth import hash_password
from screenpop.config import parse_config
from screenpop.settings import Settings

PW = hash_password("pw")
CONFIG: dict[str, Any] = {
    "agents": [
        {"id": "ada", "password_hash": PW, "role": "admin"},
        {"id": "alice", "password_hash": PW, "extensions": ["1001"]},
    ],
    "connectors": [
        {"name": "balance", "kind": "http", "role": "section",
         "options": {"url": "http://127.0.0.1:9/balance/{customer_id}", "headers": {"Authorization": "Bearer s3"}}},
    ],
}
SECRET_CONNECTOR = {
    "kind": "http", "role": "section", "title": "Loyalty", "timeout_ms": 300,
    "options": {"url": "https://svc:pa55@loyalty.example/{customer_id}", "headers": {"X-Api-Key": "key-123"}},
}


def make(tmp_path: Path) -> TestClient:
    settings = Settings(webhook_secret="w", session_secret="s" * 32, state_url=f"sqlite:///{tmp_path / 'st.db'}")
    return TestClient(create_app(settings, config=parse_config(CONFIG)))


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[TestClient]:
    with make(tmp_path) as c:
        assert c.post("/api/login", json={"username": "ada", "password": "pw"}).status_code == 200
        yield c


def test_agents_get_403_and_strangers_401(tmp_path: Path) -> None:
    """Only the admin role may use the admin API."""
    with make(tmp_path) as c:
        assert c.get("/api/admin/connectors").status_code == 401
        c.post("/api/login", json={"username": "alice", "password": "pw"})
        r = c.get("/api/admin/connectors")
        assert r.status_code == 403 and "admin" in r.json()["error"]


def test_secrets_never_come_back(admin: TestClient) -> None:
    """Listing, reading and writing show secrets as ********, in the answer and in the audit trail."""
    r = admin.put("/api/admin/connectors/loyalty", json=SECRET_CONNECTOR)
    assert r.status_code == 201, r.text
    everything = admin.get("/api/admin/connectors").text + r.text + admin.get("/api/admin/audit").text
    for secret in ("pa55", "key-123", "s3"):
        assert secret not in everything
    one = admin.get("/api/admin/connectors/loyalty").json()
    assert one["options"]["headers"]["X-Api-Key"] == "********" and one["origin"] == "admin"


def test_write_back_of_the_redacted_form_keeps_the_secret(admin: TestClient) -> None:
    """GET, change the timeout, PUT back: the stored secret is kept and the change is live."""
    admin.put("/api/admin/connectors/loyalty", json=SECRET_CONNECTOR)
    body = admin.get("/api/admin/connectors/loyalty").json()
    body.pop("origin")
    body["timeout_ms"] = 450
    assert admin.put("/api/admin/connectors/loyalty", json=body).status_code == 200
    services = admin.app.state.services  # type: ignore[attr-defined]
    live = next(s for s in services.lookup.sources if s.name == "loyalty")
    assert live.config.timeout_ms == 450
    assert live.config.options["headers"]["X-Api-Key"] == "key-123"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"kind": "http", "timeout_ms": -5, "options": {"url": "http://x/{phone}"}}, "timeout_ms"),
        ({"kind": "soap"}, "unknown connector kind 'soap'"),
        ({"kind": "http", "options": {"url": "ftp://x"}}, "options.url"),
        ({"kind": "http", "role": "section", "section": "customer", "options": {"url": "http://x/{phone}"}},
         "reserved"),
    ],
)
def test_validation_errors_name_the_field(admin: TestClient, body: dict, message: str) -> None:
    """A bad connector is a 422 whose message names the field; nothing is stored."""
    r = admin.put("/api/admin/connectors/bad", json=body)
    assert r.status_code == 422 and message in r.json()["error"], r.text
    assert admin.get("/api/admin/connectors/bad").status_code == 404


def test_delete_and_persistence_across_restart(tmp_path: Path) -> None:
    """Changes are stored: after a restart the added connector is there and the deleted one is gone."""
    with make(tmp_path) as c:
        c.post("/api/login", json={"username": "ada", "password": "pw"})
        assert c.put("/api/admin/connectors/loyalty", json=SECRET_CONNECTOR).status_code == 201
        assert c.delete("/api/admin/connectors/balance").status_code == 204
        assert c.delete("/api/admin/connectors/balance").status_code == 404
    with make(tmp_path) as c:
        c.post("/api/login", json={"username": "ada", "password": "pw"})
        names = [x["name"] for x in c.get("/api/admin/connectors").json()["connectors"]]
        assert names == ["loyalty"]
        audit = c.get("/api/admin/audit").json()["entries"]
        assert [(e["actor"], e["action"], e["target"]) for e in audit] == [("ada", "delete", "balance"),
                                                                           ("ada", "put", "loyalty")]


def test_health_and_debug_lookup(admin: TestClient) -> None:
    """Health reports the breaker and latencies; the debug lookup reports each section's status."""
    r = admin.post("/api/admin/lookup", json={"number": "+14155550100"})
    assert r.status_code == 200
    sections = {s["name"]: s for s in r.json()["sections"]}
    assert sections["customer"]["status"] == "unavailable"  # no identity source in this config
    assert sections["balance"]["status"] == "error" and sections["balance"]["latency_ms"] is not None
    health = admin.get("/api/admin/connectors/balance/health?ping=true").json()
    assert health["breaker"]["state"] == "closed" and health["outcomes"] == {"error": 1}
    assert health["ping"]["ok"] is False
    assert admin.post("/api/admin/lookup", json={}).status_code == 422
    assert admin.get("/api/admin/connectors/nope/health").status_code == 404


def test_a_query_parameter_of_the_wrong_type_is_422_naming_it(admin: TestClient) -> None:
    """`?limit=abc` is a 422 whose JSON error names query.limit (FastAPI's validation, same error format)."""
    r = admin.get("/api/admin/audit", params={"limit": "abc"})
    assert r.status_code == 422 and r.json()["error"].startswith("query.limit: "), r.text
