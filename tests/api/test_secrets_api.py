"""Secrets through the admin API: never shown, never sent to a new host, the state database out of reach."""

from __future__ import annotations

import sqlite3
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
CONFIG: dict[str, Any] = {"agents": [{"id": "ada", "password_hash": PW, "role": "admin"}]}
LOYALTY = {"kind": "http", "role": "section",
           "options": {"url": "https://loyalty.example/{customer_id}?key=qk-1", "headers": {"X-Key": "hk-1"}}}


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[TestClient]:
    data = tmp_path / "data"
    data.mkdir()
    settings = Settings(webhook_secret="w", session_secret="s" * 32, state_url=f"sqlite:///{tmp_path / 'st.db'}",
                        data_dirs=[str(tmp_path)])
    with TestClient(create_app(settings, config=parse_config(CONFIG))) as c:
        assert c.post("/api/login", json={"username": "ada", "password": "pw"}).status_code == 200
        yield c


def test_a_masked_header_is_not_sent_to_a_new_host(admin: TestClient) -> None:
    """Changing the URL's host while keeping ******** is a 422 that says to enter the secret again."""
    assert admin.put("/api/admin/connectors/loyalty", json=LOYALTY).status_code == 201
    body = admin.get("/api/admin/connectors/loyalty").json()
    body.pop("origin")
    assert "hk-1" not in str(body) and "qk-1" not in str(body)
    body["options"]["url"] = body["options"]["url"].replace("loyalty.example", "attacker.example")
    r = admin.put("/api/admin/connectors/loyalty", json=body)
    assert r.status_code == 422 and "enter the secret again" in r.json()["error"], r.text
    services = admin.app.state.services  # type: ignore[attr-defined]
    live = next(s for s in services.lookup.sources if s.name == "loyalty")
    assert "loyalty.example" in live.config.options["url"]


def test_the_state_database_cannot_be_read_by_a_connector(admin: TestClient, tmp_path: Path) -> None:
    """A SQLite connector on screenpop's own state database is refused, as are file: URIs and other folders."""
    state = {"kind": "sql", "role": "section",
             "options": {"url": f"sqlite:///{tmp_path / 'st.db'}", "query": "SELECT name, body FROM "
                                                                           "screenpop_connector_overrides"}}
    r = admin.put("/api/admin/connectors/steal", json=state)
    assert r.status_code == 422 and "screenpop itself" in r.json()["error"], r.text
    uri = {**state, "options": {**state["options"], "url": f"sqlite:///file:{tmp_path}/x.db?mode=rwc&uri=true"}}
    r = admin.put("/api/admin/connectors/steal", json=uri)
    assert r.status_code == 422 and "file: URIs" in r.json()["error"], r.text
    assert not (tmp_path / "x.db").exists()
    outside = Path("/tmp") / f"sp-outside-{tmp_path.name}.db"
    sqlite3.connect(outside).close()
    try:
        other = {**state, "options": {**state["options"], "url": f"sqlite:///{outside}"}}
        r = admin.put("/api/admin/connectors/steal", json=other)
        assert r.status_code == 422 and "outside the data folders" in r.json()["error"], r.text
    finally:
        outside.unlink()
    assert admin.get("/api/admin/connectors/steal").status_code == 404


def test_the_audit_trail_shows_no_secret_of_any_name(admin: TestClient) -> None:
    """X-Key, ?key=, a Postgres URL's ?password=: none is in the list, one connector, or the audit."""
    pg = {"kind": "sql", "role": "section", "options": {
        "url": "postgresql://app@127.0.0.1/test?password=pk-1", "query": "SELECT 1 AS x"}}
    assert admin.put("/api/admin/connectors/loyalty", json=LOYALTY).status_code == 201
    assert admin.put("/api/admin/connectors/crm", json=pg).status_code == 201
    seen = "".join(admin.get(p).text for p in ("/api/admin/connectors", "/api/admin/connectors/crm",
                                               "/api/admin/audit"))
    for secret in ("hk-1", "qk-1", "pk-1"):
        assert secret not in seen


def test_a_journal_connectors_secrets_are_declared_by_its_journal_kind(admin: TestClient) -> None:
    """A `journal` connector is masked by the journal kind's declarations (its URL readable, its token not),
    kept on a round trip, and refused when its target host changes with the mask kept."""
    crm = {"kind": "http", "role": "journal", "options": {
        "url": "https://crm.example/api/calls?tenant=t1&token=jt-1", "headers": {"Authorization": "Bearer jh-1"},
        "body": {"notes": "{notes}"}}}
    assert admin.put("/api/admin/connectors/crm", json=crm).status_code == 201, "created"
    body = admin.get("/api/admin/connectors/crm").json()
    body.pop("origin")
    assert "jt-1" not in str(body) and "jh-1" not in str(body)
    assert body["options"]["url"].startswith("https://crm.example/api/calls?")  # not masked whole
    assert body["options"]["body"] == {"notes": "{notes}"}
    r = admin.put("/api/admin/connectors/crm", json=body)
    assert r.status_code == 200, r.text
    text = admin.get("/api/admin/config.yaml").text
    assert "jt-1" not in text and "jh-1" not in text
    assert admin.post("/api/admin/config", json={"yaml": text}).status_code == 200  # the stored secrets kept
    body["options"]["url"] = body["options"]["url"].replace("crm.example", "attacker.example")
    r = admin.put("/api/admin/connectors/crm", json=body)
    assert r.status_code == 422 and "enter the secret again" in r.json()["error"], r.text
