"""A real SIP call through Kamailio (docs/telephony/kamailio.cfg as shipped) pops alice's card before she answers."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import need
from tests.e2e.conftest import ServerProcess, login
from tests.e2e.sipua import SipUA

pytestmark = pytest.mark.e2e

CFG = Path(__file__).resolve().parents[2] / "docs" / "telephony" / "kamailio.cfg"
CUSTOMER = "+14155550100"
AGENT = "1001"  # alice's extension in the demo


@dataclass
class Kamailio:
    """A Kamailio process started by a test."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def addr(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing uses right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def options_ok(port: int) -> bool:
    """True when the proxy answers a SIP OPTIONS ping on `port` with 200."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.5)
        me = s.getsockname()[1]
        msg = (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-ping{me}\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:ping@127.0.0.1>;tag=p\r\nTo: <sip:127.0.0.1:{port}>\r\n"
               f"Call-ID: ping-{me}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        s.sendto(msg.encode(), ("127.0.0.1", port))
        try:
            return s.recv(4096).startswith(b"SIP/2.0 200")
        except OSError:
            return False


@pytest.fixture(scope="module")
def kamailio(demo_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kamailio]:
    """Kamailio with the documented config, pointed at the demo's webhook; always stopped at the end."""
    binary = shutil.which("kamailio") or ("/usr/sbin/kamailio" if os.path.exists("/usr/sbin/kamailio") else None)
    need(binary is not None, "kamailio not installed (Debian: kamailio kamailio-utils-modules kamailio-tls-modules)")
    assert binary is not None
    tmp = tmp_path_factory.mktemp("kamailio")
    port = free_udp_port()
    defines = ["-A", f"SIP_LISTEN=udp:127.0.0.1:{port}",
               "-A", f'SCREENPOP_URL="{demo_server.url}/telephony/webhook"',
               "-A", f'SCREENPOP_SECRET="{demo_server.secret}"']
    check = subprocess.run([binary, "-c", "-f", str(CFG), *defines], capture_output=True, text=True, timeout=30,
                           check=False)
    if check.returncode != 0:
        pytest.fail(f"kamailio -c rejected {CFG.name} (exit {check.returncode}):\n{check.stderr[-4000:]}")
    log_path = tmp / "kamailio.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen([binary, "-f", str(CFG), "-DD", "-E", "-Y", str(tmp), "-w", str(tmp),
                                 "-m", "32", "-M", "4", *defines],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    k = Kamailio(proc, port, log_path)
    try:
        deadline = time.monotonic() + 20
        while not options_ok(port):
            if proc.poll() is not None:
                pytest.fail(f"kamailio exited with {proc.returncode}:\n{k.log()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"kamailio did not answer OPTIONS within 20 s:\n{k.log()[-4000:]}")
        yield k
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: the main process and its children
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


async def agent_socket(server: ServerProcess, user: str) -> ClientConnection:
    token = login(server.url, user)
    ws = await connect(server.url.replace("http", "ws") + "/ws/agent",
                       additional_headers={"Authorization": f"Bearer {token}"})
    first = json.loads(await ws.recv())
    assert first["type"] == "snapshot"
    return ws


async def next_of(ws: ClientConnection, kind: str, call_id: str, k: Kamailio, timeout_s: float = 15) -> dict[str, Any]:
    """The next `kind` message about `call_id` (others skipped); fails with Kamailio's log if none comes."""
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                m = json.loads(await ws.recv())
                about = m["call"]["call_id"] if m["type"] == "call.ringing" else m.get("call_id")
                if about == call_id:
                    assert m["type"] in (kind, "card.section"), f"expected {kind}, got {m['type']}"
                    if m["type"] == kind:
                        return m
    except TimeoutError:
        pytest.fail(f"no {kind} for {call_id} within {timeout_s} s; kamailio log:\n{k.log()[-3000:]}")


async def test_sip_call_pops_the_card_before_the_agent_answers(demo_server: ServerProcess,
                                                                kamailio: Kamailio) -> None:
    """INVITE to 1001 rings alice with the caller's card before the 200 OK; 200 answers it, BYE ends it."""
    agent = await SipUA.start(AGENT, kamailio.addr)
    customer = await SipUA.start(CUSTOMER, kamailio.addr)
    try:
        await agent.register()
        alice = await agent_socket(demo_server, "alice")
        async with alice:
            call = customer.invite(AGENT)
            invite = await agent.expect_request("INVITE")
            agent.reply(invite, 100)
            agent.reply(invite, 180)
            await customer.expect_response(call.call_id, 180)

            # the agent's phone rings and has not answered: the card is already on alice's screen
            ringing = await next_of(alice, "call.ringing", call.call_id, kamailio)
            assert ringing["call"]["caller"]["e164"] == CUSTOMER

            agent.reply(invite, 200, sdp=True)
            ok = await customer.expect_response(call.call_id, 200)
            customer.answered(call, ok)
            await agent.expect_request("ACK")
            answered = await next_of(alice, "call.answered", call.call_id, kamailio)
            assert answered["agent"] == "alice"

            hangup = asyncio.create_task(customer.bye(call))
            bye = await agent.expect_request("BYE")
            agent.reply(bye, 200)
            await hangup
            await next_of(alice, "call.ended", call.call_id, kamailio)
    finally:
        await agent.register(expires=0)  # the next test's phone is the only one that rings
        agent.close()
        customer.close()


async def test_sip_call_cancelled_while_ringing_ends_the_card(demo_server: ServerProcess, kamailio: Kamailio) -> None:
    """A CANCEL while 1001 rings ends alice's card; a Call-ID with a quote and a backslash arrives intact."""
    agent = await SipUA.start(AGENT, kamailio.addr)
    customer = await SipUA.start(CUSTOMER, kamailio.addr)
    try:
        await agent.register()
        alice = await agent_socket(demo_server, "alice")
        async with alice:
            call = customer.invite(AGENT, call_id=f'{uuid.uuid4().hex}"q\\b@127.0.0.1')  # both legal in SIP
            invite = await agent.expect_request("INVITE")
            agent.reply(invite, 180)
            await next_of(alice, "call.ringing", call.call_id, kamailio)

            hangup = asyncio.create_task(customer.cancel(call))
            cancel = await agent.expect_request("CANCEL")
            agent.reply(cancel, 200)
            agent.reply(invite, 487)
            await agent.expect_request("ACK")
            await hangup
            ended = await next_of(alice, "call.ended", call.call_id, kamailio)
            assert ended["type"] == "call.ended"
    finally:
        await agent.register(expires=0)  # the next test's phone is the only one that rings
        agent.close()
        customer.close()
