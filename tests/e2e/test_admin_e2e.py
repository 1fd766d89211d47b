"""Against the demo: an admin wires misbehaving sources; calls still get a full card, each bad section its status."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from websockets.asyncio.client import connect

from tests.conftest import free_port
from tests.e2e.conftest import ServerProcess, login

pytestmark = pytest.mark.e2e


@pytest.fixture
async def bad_backend() -> AsyncIterator[str]:
    """A real HTTP server that misbehaves on purpose: hangs, garbage, 50 MB, slow, 500."""
    stop = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await stop.wait()
        return web.json_response({})

    async def garbage(request: web.Request) -> web.Response:
        return web.Response(text="<html>not json{", content_type="application/json")

    async def huge(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        chunk = b"[" + b"1," * 32_768
        try:
            for _ in range(800):  # ~50 MB, bounded
                await resp.write(chunk)
        except (ConnectionResetError, RuntimeError):
            pass
        return resp

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.3)
        return web.json_response({"points": 120})

    async def fail(request: web.Request) -> web.Response:
        return web.json_response({"error": "boom"}, status=500)

    app = web.Application()
    app.add_routes([web.get("/hang/{id}", hang), web.get("/garbage/{id}", garbage), web.get("/huge/{id}", huge),
                    web.get("/slow/{id}", slow), web.get("/fail/{id}", fail)])
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    stop.set()
    await runner.cleanup()


def connector(base: str, path: str, timeout_ms: int = 600, **extra: object) -> dict[str, object]:
    return {"kind": "http", "role": "section", "timeout_ms": timeout_ms,
            "options": {"url": f"{base}/{path}/{{customer_id}}", **extra}}


async def test_bad_sources_do_not_sink_the_card(demo_server: ServerProcess, bad_backend: str) -> None:
    """hang/garbage/50 MB/500/slow each get their status; balance, purchases and credit stay ok."""
    admin = login(demo_server.url, "admin")
    agent = login(demo_server.url, "alice")
    auth = {"Authorization": f"Bearer {admin}"}
    async with httpx.AsyncClient(base_url=demo_server.url, headers=auth, timeout=10) as api:
        assert (await api.get("/api/admin/connectors", headers={"Authorization": f"Bearer {agent}"})).status_code == 403
        added = {
            "x_hang": connector(bad_backend, "hang", 300),
            "x_garbage": connector(bad_backend, "garbage"),
            "x_huge": connector(bad_backend, "huge", 1400, max_bytes=1_000_000),
            "x_fail": connector(bad_backend, "fail"),
            "x_slow": connector(bad_backend, "slow", 1200,
                                headers={"Authorization": "Bearer very-secret-token"}),
        }
        for name, body in added.items():
            r = await api.put(f"/api/admin/connectors/{name}", json=body)
            assert r.status_code == 201, r.text
        listing = (await api.get("/api/admin/connectors")).text
        assert "very-secret-token" not in listing and "********" in listing

        async with connect(demo_server.url.replace("http", "ws") + "/ws/agent",
                           additional_headers={"Authorization": f"Bearer {agent}"}) as ws:
            json.loads(await ws.recv())
            call_id = demo_server.call("+14155550100", agent="1001")
            status: dict[str, str] = {}
            reason: dict[str, str | None] = {}
            async with asyncio.timeout(20):
                while not status or "pending" in status.values():
                    m = json.loads(await ws.recv())
                    if m["type"] == "call.ringing" and m["call"]["call_id"] == call_id:
                        status = {s["name"]: s["status"] for s in m["call"]["sections"]}
                    elif m["type"] == "card.section" and m["call_id"] == call_id:
                        status[m["name"]], reason[m["name"]] = m["status"], m.get("reason")
        assert {k: status[k] for k in ("customer", "balance", "purchases", "credit")} == dict.fromkeys(
            ("customer", "balance", "purchases", "credit"), "ok")
        assert status["x_hang"] == "timeout"
        assert status["x_garbage"] == "error" and "JSON" in (reason["x_garbage"] or "")
        assert status["x_huge"] == "error" and "larger than" in (reason["x_huge"] or "")
        assert status["x_fail"] == "error" and "500" in (reason["x_fail"] or "")
        assert status["x_slow"] == "ok"

        debug = (await api.post("/api/admin/lookup", json={"number": "+14155550100"})).json()
        latency = {s["name"]: s["latency_ms"] for s in debug["sections"]}
        assert all(isinstance(latency[n], float | int) for n in ("customer", "balance", "x_slow"))
        health = (await api.get("/api/admin/connectors/x_fail/health")).json()
        assert health["outcomes"]["error"] >= 2
        for name in added:
            assert (await api.delete(f"/api/admin/connectors/{name}")).status_code == 204
        demo_server.event(call_id, "ended")
