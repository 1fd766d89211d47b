"""Two screenpop processes sharing Redis: the webhook reaches A, the agent's socket is on B."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from screenpop.demo import DemoEnvironment
from tests.conftest import free_port
from tests.e2e.conftest import ServerProcess, login, start_process

pytestmark = pytest.mark.e2e


@pytest.fixture
def pair(redis_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Instances A and B with the demo's config, one Redis bus, one session secret."""
    with DemoEnvironment(workdir=tmp_path / "demo", latency_scale=0.2) as demo:
        env = {
            "SCREENPOP_CONFIG": str(demo.config_path),
            "SCREENPOP_BUS_URL": redis_url,
            "SCREENPOP_BUS_PREFIX": f"test-{uuid.uuid4().hex[:8]}",
            "SCREENPOP_WEBHOOK_SECRET": "pair-secret",
            "SCREENPOP_SESSION_SECRET": "shared-session-secret-for-the-test",
        }
        pa, pb = free_port(), free_port()
        a = start_process(["serve", "--port", str(pa)], tmp_path, env=env, port=pa, name="a")
        b = start_process(["serve", "--port", str(pb)], tmp_path, env=env, port=pb, name="b")
        for s in (a, b):
            s.secret = "pair-secret"
        try:
            for s in (a, b):
                s.wait_ready()
            yield a, b
        finally:
            a.stop()
            b.stop()


async def test_card_crosses_instances_over_redis(pair: tuple[ServerProcess, ServerProcess]) -> None:
    """alice logs in and connects on B; the call is posted to A; she gets the full card on B."""
    a, b = pair
    token = login(b.url, "alice")  # the token is signed with the shared secret: valid on both
    async with connect(b.url.replace("http", "ws") + "/ws/agent",
                       additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        assert json.loads(await ws.recv())["type"] == "snapshot"
        call_id = a.call("+14155550100", agent="1001")
        seen: dict[str, str] = {}
        async with asyncio.timeout(15):
            while len(seen) < 6 or "pending" in seen.values():
                m = json.loads(await ws.recv())
                if m["type"] == "call.ringing":
                    seen = {s["name"]: s["status"] for s in m["call"]["sections"]}
                elif m["type"] == "card.section" and m["call_id"] == call_id:
                    seen[m["name"]] = m["status"]
        assert seen.pop("history") == "empty"  # each instance's journal is in memory here (no state store)
        assert seen == {"customer": "ok", "balance": "ok", "purchases": "ok", "credit": "ok", "offers": "ok"}
        a.event(call_id, "ended")
        async with asyncio.timeout(15):
            while (m := json.loads(await ws.recv()))["type"] != "call.ended":
                pass
        assert m["call_id"] == call_id
