"""A ring-all call through Asterisk (AMI) and through FreeSWITCH (ESL) against `screenpop serve` as a real process.

The PBX is the test's wire-protocol server, running in the test's event loop; screenpop connects to it over
TCP (SCREENPOP_AMI_URL / SCREENPOP_ESL_URL) with the demo's real backends behind it. alice (1001) and bob
(1002) both get the card, alice answers and keeps it, bob's is withdrawn, the caller hangs up and alice's ends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from screenpop.demo import DemoEnvironment
from tests.conftest import free_port
from tests.e2e.conftest import ServerProcess, login, start_process
from tests.telephony.ami_server import AmiServer
from tests.telephony.esl_server import EslServer
from tests.telephony.scenarios import CALLER, DID, Scenario, ami_scenarios, esl_scenarios

pytestmark = pytest.mark.e2e


@asynccontextmanager
async def screenpop(tmp_path: Path, **env: str) -> AsyncIterator[ServerProcess]:
    """`screenpop serve` with the demo's config and backends (latency x0.2) and the given extra environment."""
    with DemoEnvironment(workdir=tmp_path / "demo", latency_scale=0.2) as demo:
        port = free_port()
        proc = start_process(["serve", "--port", str(port)], tmp_path, port=port, name="cti", env={
            "SCREENPOP_CONFIG": str(demo.config_path), "SCREENPOP_SESSION_SECRET": "cti-e2e-session-secret",
            "SCREENPOP_WEBHOOK_SECRET": "cti-e2e-webhook-secret", **env})
        try:
            await asyncio.to_thread(proc.wait_ready)
            yield proc
        finally:
            await asyncio.to_thread(proc.stop)


async def agent_socket(server: ServerProcess, user: str) -> ClientConnection:
    """Log `user` in over HTTP and open their socket with the bearer token; the snapshot is read."""
    token = await asyncio.to_thread(login, server.url, user)
    ws = await connect(server.url.replace("http", "ws") + "/ws/agent",
                       additional_headers={"Authorization": f"Bearer {token}"})
    async with asyncio.timeout(10):
        assert json.loads(await ws.recv())["type"] == "snapshot"
    return ws


async def next_of(ws: ClientConnection, kind: str, call_id: str) -> dict[str, Any]:
    """The next message of type `kind` about `call_id` (others are skipped), within 15 s."""
    async with asyncio.timeout(15):
        while True:
            m = json.loads(await ws.recv())
            if m["type"] == kind and (m.get("call_id") or m.get("call", {}).get("call_id")) == call_id:
                return m


async def ring_all(server: ServerProcess, pbx: AmiServer | EslServer, sc: Scenario) -> None:
    """Play the ring-all scenario phase by phase and check what alice and bob see after each."""
    alice, bob = await agent_socket(server, "alice"), await agent_socket(server, "bob")
    async with alice, bob:
        await pbx.send(*sc.phases[0])
        for ws in (alice, bob):
            card = (await next_of(ws, "call.ringing", sc.call_id))["call"]
            assert (card["caller"]["e164"], card["called"]) == (CALLER, DID)
        await pbx.send(*sc.phases[1])
        assert await next_of(alice, "call.answered", sc.call_id) == {"type": "call.answered", "call_id": sc.call_id,
                                                                      "agent": "alice"}
        assert (await next_of(bob, "call.withdrawn", sc.call_id))["reason"] == "answered by another agent"
        await pbx.send(*sc.phases[2])
        assert (await next_of(alice, "call.ended", sc.call_id))["call_id"] == sc.call_id


async def test_ring_all_queue_through_asterisk_ami(tmp_path: Path) -> None:
    """Asterisk ring-all to PJSIP/1001 and PJSIP/1002: both pop, alice answers, bob is withdrawn, alice's ends."""
    async with AmiServer() as ami, screenpop(tmp_path, SCREENPOP_AMI_URL=ami.url) as server:
        await ami.wait_for(lambda: ami.count("CoreShowChannels") == 1, within=30)
        await ring_all(server, ami, ami_scenarios()["ringall"])
    assert ami.logins == 1


async def test_ring_all_through_freeswitch_esl(tmp_path: Path) -> None:
    """FreeSWITCH bridge to user/1001,user/1002: both pop, alice answers, bob is withdrawn, alice's ends."""
    async with EslServer() as esl, screenpop(tmp_path, SCREENPOP_ESL_URL=esl.url) as server:
        await esl.wait_for(lambda: esl.count("api show channels") == 1, within=30)
        await ring_all(server, esl, esl_scenarios()["ringall"])
    assert esl.subscriptions == 1
