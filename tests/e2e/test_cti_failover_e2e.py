"""CTI failover with real processes: two `screenpop serve` given the same AMI (or ESL) URL on one Redis; only
one holds the manager (event socket) connection (a lease); SIGKILL it and the other takes over within the
lease time, resyncs from the PBX (a call that rang meanwhile pops, once) and pops the calls that ring after,
once."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from screenpop.demo import DemoEnvironment
from tests.conftest import free_port
from tests.e2e.conftest import ServerProcess, start_process
from tests.e2e.test_cti_e2e import agent_socket
from tests.telephony.ami_server import AmiServer
from tests.telephony.esl_server import EslServer
from tests.telephony.scenarios import Scenario, ami_scenarios, esl_scenarios

pytestmark = pytest.mark.e2e

LEASE_S = 3.0  # SCREENPOP_CTI_LEASE_S: the takeover bound


def cti_state(server: ServerProcess) -> str:
    """This instance's lease state for its one PBX, from /readyz: held or standby."""
    states = list(httpx.get(f"{server.url}/readyz", timeout=5).json()["cti"].values())
    assert len(states) == 1, states
    return str(states[0])


@pytest.fixture
def pair(tmp_path: Path, redis_url: str) -> Iterator[tuple[list[ServerProcess], dict[str, str]]]:
    """The environment both instances share (the demo's config and backends, one Redis, a prefix of their own)."""
    with DemoEnvironment(workdir=tmp_path / "demo", latency_scale=0.2) as demo:
        env = {"SCREENPOP_CONFIG": str(demo.config_path), "SCREENPOP_SESSION_SECRET": "failover-session-secret",
               "SCREENPOP_WEBHOOK_SECRET": "failover-webhook-secret", "SCREENPOP_BUS_URL": redis_url,
               "SCREENPOP_BUS_PREFIX": f"t-failover-{uuid.uuid4().hex[:8]}", "SCREENPOP_CTI_LEASE_S": str(LEASE_S)}
        servers: list[ServerProcess] = []
        try:
            yield servers, env
        finally:
            for server in servers:
                server.stop()


class Seen:
    """Every message an agent's socket received, read in the background."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws, self.messages = ws, []  # type: ignore[var-annotated]
        self.task = asyncio.create_task(self._read())
        self.changed = asyncio.Event()

    async def _read(self) -> None:
        async for raw in self.ws:
            self.messages.append(json.loads(raw))
            self.changed.set()

    def count(self, kind: str, call_id: str) -> int:
        return sum(1 for m in self.messages if m["type"] == kind
                   and (m.get("call_id") or m.get("call", {}).get("call_id")) == call_id)

    async def wait(self, kind: str, call_id: str, within: float = 20) -> None:
        async with asyncio.timeout(within):
            while not self.count(kind, call_id):
                self.changed.clear()
                await self.changed.wait()

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.gather(self.task, return_exceptions=True)


@dataclass(frozen=True)
class Pbx:
    """One CTI protocol's stand-in server, its setting, scenarios, and how it counts logins and listings."""

    server: Callable[[], AmiServer | EslServer]
    setting: str
    scenarios: Callable[[], dict[str, Scenario]]
    logins: Callable[[Any], int]
    listing: str


PBXS = {
    "asterisk": Pbx(AmiServer, "SCREENPOP_AMI_URL", ami_scenarios, lambda s: s.logins, "CoreShowChannels"),
    "freeswitch": Pbx(EslServer, "SCREENPOP_ESL_URL", esl_scenarios, lambda s: s.auth_attempts,
                      "api show channels"),
}


@pytest.mark.parametrize("pbx", list(PBXS))
async def test_one_holder_then_a_takeover_with_resync_and_no_duplicate_pop(
        tmp_path: Path, pair: tuple[list[ServerProcess], dict[str, str]], pbx: str) -> None:
    """Only one instance connects (AMI or ESL); SIGKILL it: the other connects within the lease time, the call
    that rang in between pops once (resync), and a call rung after the takeover pops once."""
    servers, env = pair
    kind = PBXS[pbx]
    scenarios = kind.scenarios()
    before, across, after = scenarios["ringall"], scenarios["drop"], scenarios["direct"]
    async with kind.server() as ami:
        env = {**env, kind.setting: ami.url}
        for name in ("a", "b"):
            port = free_port()
            servers.append(start_process(["serve", "--port", str(port)], tmp_path, port=port, name=name, env=env))
        for server in servers:
            await asyncio.to_thread(server.wait_ready)
        await ami.wait_for(lambda: ami.count(kind.listing) == 1, within=30)
        await asyncio.sleep(LEASE_S / 2)  # the standby tries several times meanwhile (every LEASE_S / 10)
        states = [await asyncio.to_thread(cti_state, s) for s in servers]
        assert sorted(states) == ["held", "standby"] and ami.connections == kind.logins(ami) == 1
        holder, survivor = servers[states.index("held")], servers[states.index("standby")]

        alice = Seen(await agent_socket(survivor, "alice"))  # on the survivor: the cards come through the bus
        try:
            await ami.send(*before.phases[0])
            await alice.wait("call.ringing", before.call_id)

            holder.proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(holder.proc.wait, 10)
            ami.channels = across.channels  # a call rings while nobody holds the connection
            await ami.wait_for(lambda: kind.logins(ami) == 2, within=LEASE_S + 10)  # the lease bound, plus a start
            await ami.wait_for(lambda: ami.count(kind.listing) == 2, within=10)
            await alice.wait("call.ringing", across.call_id)
            assert await asyncio.to_thread(cti_state, survivor) == "held"

            await ami.send(*after.phases[0])
            await alice.wait("call.ringing", after.call_id)
            await ami.send(*across.phases[1])  # the resynced call is answered by alice, then ends
            await alice.wait("call.ended", across.call_id)
            await ami.send(*after.phases[-1])
            await alice.wait("call.ended", after.call_id)
            for call_id in (before.call_id, across.call_id, after.call_id):
                assert alice.count("call.ringing", call_id) == 1, (call_id, alice.messages)
            assert ami.connections == 2
        finally:
            await alice.close()

