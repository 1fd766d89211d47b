"""The whole path over real sockets: `screenpop demo` (real backends) -> webhook -> agent socket."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.e2e.conftest import ServerProcess, login

pytestmark = pytest.mark.e2e


async def agent_socket(server: ServerProcess, user: str) -> ClientConnection:
    token = login(server.url, user)
    ws = await connect(server.url.replace("http", "ws") + "/ws/agent",
                       additional_headers={"Authorization": f"Bearer {token}"})
    first = json.loads(await ws.recv())
    assert first["type"] == "snapshot"
    return ws


async def until_complete(ws: ClientConnection, call_id: str) -> dict[str, Any]:
    """Read messages for `call_id` until every section has settled; the card as the agent sees it."""
    card: dict[str, Any] | None = None
    async with asyncio.timeout(15):
        while True:
            m = json.loads(await ws.recv())
            if m["type"] == "call.ringing" and m["call"]["call_id"] == call_id:
                card = m["call"]
            elif m["type"] == "card.section" and m["call_id"] == call_id and card is not None:
                card["sections"] = [m if s["name"] == m["name"] else s for s in card["sections"]]
            if card is not None and all(s["status"] != "pending" for s in card["sections"]):
                return card


async def test_known_caller_gives_alice_a_complete_card_and_bob_nothing(demo_server: ServerProcess) -> None:
    """+14155550100 ringing at 1001: alice's card fills (customer, balance, purchases, credit all ok)."""
    alice, bob = await agent_socket(demo_server, "alice"), await agent_socket(demo_server, "bob")
    async with alice, bob:
        call_id = demo_server.call("+14155550100", agent="1001")
        card = await until_complete(alice, call_id)
        status = {s["name"]: s["status"] for s in card["sections"]}
        assert status == {"customer": "ok", "balance": "ok", "purchases": "ok", "credit": "ok", "offers": "ok",
                          "history": "ok"}
        customer = card["sections"][0]["data"]["customer"]
        assert customer["name"] and customer["phone"] == "+14155550100"
        balance = next(s for s in card["sections"] if s["name"] == "balance")
        assert {"balance", "currency", "overdue"} <= set(balance["data"])
        # bob's next message is about his own call: nothing of alice's reached him
        other = demo_server.call("+14155550199", agent="1002")
        async with asyncio.timeout(15):
            m = json.loads(await bob.recv())
        assert m["type"] == "call.ringing" and m["call"]["call_id"] == other
        for cid in (call_id, other):
            demo_server.event(cid, "ended")


async def test_unknown_and_several_matches(demo_server: ServerProcess) -> None:
    """The unknown number gives an 'unknown caller' card; the shared number lists two candidates."""
    alice = await agent_socket(demo_server, "alice")
    async with alice:
        unknown = await until_complete(alice, demo_server.call("+14155550199", agent="1001"))
        assert unknown["sections"][0]["status"] == "empty"
        assert unknown["sections"][0]["reason"] == "unknown caller"
        several = await until_complete(alice, demo_server.call("+14155550111", agent="alice"))
        data = several["sections"][0]["data"]
        assert data["match"] == "several" and len(data["candidates"]) == 2


async def test_select_fills_the_card_for_the_chosen_customer(demo_server: ServerProcess) -> None:
    """Picking one of two candidates over the socket fetches that customer's sections."""
    alice = await agent_socket(demo_server, "alice")
    async with alice:
        call_id = demo_server.call("+14155550111", agent="1001")
        card = await until_complete(alice, call_id)
        chosen = card["sections"][0]["data"]["candidates"][1]
        await alice.send(json.dumps({"type": "select", "call_id": call_id, "customer_id": chosen["id"]}))
        settled: dict[str, str] = {}
        async with asyncio.timeout(15):
            while len(settled) < 5:  # balance, purchases, credit, offers, history
                m = json.loads(await alice.recv())
                if m["type"] == "card.section" and m["name"] != "customer" and m["status"] != "pending":
                    settled[m["name"]] = m["status"]
        assert settled["balance"] == "ok" and settled["credit"] == "ok"


async def test_withheld_number_pops_a_card_that_says_so(demo_server: ServerProcess) -> None:
    """An anonymous caller still rings with a card that says the number is withheld."""
    alice = await agent_socket(demo_server, "alice")
    async with alice:
        call_id = demo_server.call("anonymous", agent="1001")
        card = await until_complete(alice, call_id)
        assert card["caller"]["status"] == "withheld"
        assert [s["name"] for s in card["sections"]] == ["customer"]


def test_cli_call_sends_a_signed_call(demo_server: ServerProcess) -> None:
    """`screenpop call` signs and sends offered + ringing, reports what it did and names the next step; the
    `ended` step needs no agent."""
    out = subprocess.run(
        [sys.executable, "-m", "screenpop.cli", "call", "+14155550100", "--agent", "1001", "--url", demo_server.url],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "offered" in out.stdout and "ringing" in out.stdout and "HTTP 202" in out.stdout
    call_id = out.stdout.split("--call-id ")[1].split()[0]
    assert f"--call-id {call_id} --event answered --agent 1001" in out.stdout
    for event, agent, following in (("answered", ["--agent", "1001"], "--event ended"), ("ended", [], "done.")):
        step = subprocess.run([sys.executable, "-m", "screenpop.cli", "call", "+14155550100", "--call-id", call_id,
                               "--event", event, *agent, "--url", demo_server.url],
                              capture_output=True, text=True, timeout=60, check=False)
        assert step.returncode == 0 and "HTTP 202" in step.stdout and following in step.stdout, step.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "screenpop.cli", "call", "+14155550100", "--agent", "1001", "--url", demo_server.url,
         "--secret", "wrong"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert bad.returncode == 1 and "signature does not match" in bad.stderr


def test_console_pages_are_served(demo_server: ServerProcess) -> None:
    """The console and the login page are served with a content security policy."""
    for path in ("/", "/login"):
        r = httpx.get(demo_server.url + path, timeout=10)
        assert r.status_code == 200 and "text/html" in r.headers["content-type"]
        assert "default-src 'self'" in r.headers["content-security-policy"]
