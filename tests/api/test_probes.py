"""/healthz and /readyz, and the drain: readiness fails and the webhooks answer 503 with Retry-After."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from screenpop.app import create_app
from screenpop.config import parse_config
from screenpop.probes import Probes
from screenpop.settings import Settings
from telephony.generic import sign

SECRET = "hook-secret"


def make(**settings: object) -> TestClient:
    values: dict[str, object] = {"webhook_secret": SECRET, "session_secret": "s" * 32, "twilio_auth_token": "tok",
                                 **settings}
    return TestClient(create_app(Settings(**values), config=parse_config({})), base_url="http://testserver")


@pytest.fixture
def client() -> Iterator[TestClient]:
    with make() as c:
        yield c


def test_healthz_says_alive_with_the_instance_id(client: TestClient) -> None:
    """/healthz: 200, ok, this process's instance id, the events it took and the lookups it runs; HEAD works,
    POST is a JSON 405."""
    r = client.get("/healthz")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["ok"] is True and body["instance"] == client.app.state.services.probes.instance  # type: ignore[attr-defined]
    assert body["events"] == 0 and body["lookups"] == 0 and body["draining"] is False
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").json() == {"error": "method not allowed: GET the probe"}


def test_readyz_is_200_when_bus_and_store_answer(client: TestClient) -> None:
    """/readyz over the memory backends: ready, every check ok, no CTI connection."""
    r = client.get("/readyz")
    assert r.status_code == 200, r.text
    checks = {"bus": "ok", "state store": "ok", "call store": "ok"}
    assert r.json() == {"ready": True, "instance": r.json()["instance"], "checks": checks, "cti": {}}


def test_draining_fails_readiness_and_refuses_webhooks_with_503(client: TestClient) -> None:
    """After drain(): /readyz 503 with the reason, both webhooks 503 JSON with Retry-After, /healthz still 200."""
    client.app.state.services.drain()  # type: ignore[attr-defined]
    r = client.get("/readyz")
    assert r.status_code == 503 and "shutting down" in r.json()["reason"] and r.json()["ready"] is False
    body = json.dumps({"call_id": "c1", "event": "offered", "caller": "+14155550100"}).encode()
    hook = client.post("/telephony/webhook", content=body, headers={"X-Screenpop-Signature": sign(body, SECRET)})
    assert hook.status_code == 503 and hook.headers["retry-after"] == "1" and "shutting down" in hook.json()["error"]
    twilio = client.post("/telephony/twilio/status", data={"CallSid": "CA1"})
    assert twilio.status_code == 503 and twilio.headers["retry-after"] == "1"
    assert client.get("/healthz").json()["draining"] is True


async def test_readyz_names_an_unreachable_bus_without_its_password() -> None:
    """A Redis bus nobody answers: /readyz 503 names the bus; the password is nowhere in the answer."""
    from tests.conftest import free_port

    app = create_app(Settings(webhook_secret=SECRET, bus_url=f"redis://:pw-hunter2@127.0.0.1:{free_port()}/0"),
                     config=parse_config({}))
    services = app.state.services
    try:
        status, body = await services.probes.ready()
    finally:
        await services.leases.close()
    assert status == 503 and b"hunter2" not in body
    assert json.loads(body)["reason"].startswith("bus: unreachable")


def test_the_openapi_document_describes_the_probes(client: TestClient) -> None:
    """/healthz and /readyz are in the OpenAPI document, with readyz's 503."""
    paths = client.get("/api/openapi.json").json()["paths"]
    assert "/healthz" in paths and set(paths["/readyz"]["get"]["responses"]) == {"200", "503"}


class Counter:
    """A check that counts its pings; it fails while `down`, hangs while `hang`."""

    def __init__(self) -> None:
        self.pings, self.down, self.hang = 0, False, False

    async def __call__(self) -> None:
        self.pings += 1
        if self.hang:
            await asyncio.Event().wait()
        if self.down:
            raise ConnectionError("refused")


async def test_a_probe_storm_costs_one_ping_per_second() -> None:
    """100 concurrent probes ping once; within cache_s they ping no more; after it, once again."""
    now = [0.0]
    check = Counter()
    probes = Probes("i1", {"bus": check}, clock=lambda: now[0])
    answers = await asyncio.gather(*(probes.ready() for _ in range(100)))
    assert {status for status, _ in answers} == {200} and check.pings == 1
    now[0] = 0.9
    await probes.ready()
    assert check.pings == 1
    now[0] = 1.0
    check.down = True
    status, body = await probes.ready()
    assert (status, check.pings) == (503, 2) and json.loads(body)["checks"]["bus"] == "unreachable (ConnectionError)"


async def test_a_check_that_hangs_is_cut_at_the_timeout() -> None:
    """A ping with no answer fails the probe after timeout_s instead of holding it."""
    check = Counter()
    check.hang = True
    probes = Probes(uuid.uuid4().hex, {"state store": check}, timeout_s=0.05)
    status, body = await probes.ready()
    assert status == 503 and "no answer within 0.05 s" in json.loads(body)["reason"]
