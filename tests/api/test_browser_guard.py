"""The browser boundary: cross-site requests refused, bearer clients unaffected, security headers, docs offline."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from screenpop.app import create_app
from screenpop.auth import hash_password
from screenpop.config import parse_config
from screenpop.settings import Settings

PW = hash_password("pw")
CONFIG = parse_config({"agents": [{"id": "ada", "password_hash": PW, "role": "admin"}]})
OWN = "http://testserver"
EVIL = "http://evil.example"
CONNECTOR = '{"kind": "http", "options": {"url": "http://127.0.0.1:9/{phone}"}}'


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings(webhook_secret="w", demo=True), config=CONFIG)) as c:
        yield c


def test_a_cookie_request_from_another_site_is_refused(client: TestClient) -> None:
    """A text/plain POST with the session cookie from a foreign origin is 403; from the page's own, JSON, fine."""
    token = client.post("/api/login", json={"username": "ada", "password": "pw"}).json()["token"]
    r = client.put("/api/admin/connectors/x", content=CONNECTOR,
                   headers={"Origin": EVIL, "Content-Type": "text/plain"})
    assert r.status_code == 403 and "cross-site" in r.json()["error"]
    r = client.post("/api/demo/call", content='{"number": "+14155550100"}',
                    headers={"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"})
    assert r.status_code == 403 and "X-Screenpop-CSRF" in r.json()["error"]
    r = client.put("/api/admin/connectors/x", content=CONNECTOR, headers={"Origin": OWN, "Content-Type": "text/plain"})
    assert r.status_code == 415 and "application/json" in r.json()["error"]
    assert client.get("/api/admin/connectors/x").status_code == 404  # nothing above was applied
    r = client.put("/api/admin/connectors/x", content=CONNECTOR,
                   headers={"Origin": OWN, "Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    client.cookies.clear()  # a bearer token is not sent by a browser on its own: no origin rule
    r = client.delete("/api/admin/connectors/x", headers={"Origin": EVIL, "Authorization": f"Bearer {token}"})
    assert r.status_code == 204


def test_a_login_from_another_site_is_refused(client: TestClient) -> None:
    """Logging the browser in as someone else from another site's page is refused."""
    r = client.post("/api/login", json={"username": "ada", "password": "pw"}, headers={"Origin": EVIL})
    assert r.status_code == 403


def test_every_answer_carries_the_security_headers(client: TestClient) -> None:
    """Pages and API answers forbid framing, sniffing and inline script; the referrer stays on the site."""
    for path in ("/", "/login", "/api/me"):
        h = client.get(path).headers
        assert "frame-ancestors 'none'" in h["content-security-policy"]
        assert "unsafe-inline" not in h["content-security-policy"]
        assert h["x-frame-options"] == "DENY" and h["x-content-type-options"] == "nosniff"
        assert h["referrer-policy"] == "same-origin"


def test_the_api_docs_load_nothing_from_another_site(client: TestClient) -> None:
    """/api/docs is served with Swagger UI's files from screenpop itself: it works offline."""
    page = client.get("/api/docs")
    assert page.status_code == 200 and "https://" not in page.text and "http://" not in page.text
    assert "<script>" not in page.text  # no inline script
    for asset in ("/api/docs/assets/swagger-ui-bundle.js", "/api/docs/assets/swagger-ui.css", "/static/js/docs.js"):
        assert client.get(asset).status_code == 200, asset
