"""Twilio against the real demo process: requests signed by Twilio's own library pop, answer and end a call."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any
from xml.etree import ElementTree as ET

import httpx
import pytest
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection, connect

from tests.e2e.conftest import ServerProcess, login

pytestmark = pytest.mark.e2e

TOKEN = "demo-twilio-token"
CALLER = "+14155550100"  # the demo's known customer
TWILIO_NUMBER = "+18005550100"  # not listed in the demo config: default_agents (alice, bob) ring


async def post(server: ServerProcess, path: str, params: dict[str, str], token: str = TOKEN,
               tamper: dict[str, str] | None = None) -> httpx.Response:
    """POST a form as Twilio does, signed over the demo's URL by RequestValidator (then maybe tampered)."""
    url = server.url + path
    signature = RequestValidator(token).compute_signature(url, params)
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(url, data={**params, **(tamper or {})}, headers={"X-Twilio-Signature": signature})


async def agent_socket(server: ServerProcess, user: str) -> ClientConnection:
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


async def complete_card(ws: ClientConnection, call_id: str) -> dict[str, Any]:
    """Follow the card of `call_id` until every section has settled."""
    card: dict[str, Any] | None = None
    async with asyncio.timeout(15):
        while card is None or any(s["status"] == "pending" for s in card["sections"]):
            m = json.loads(await ws.recv())
            if m["type"] == "call.ringing" and m["call"]["call_id"] == call_id:
                card = m["call"]
            elif m["type"] == "card.section" and m["call_id"] == call_id and card is not None:
                card["sections"] = [m if s["name"] == m["name"] else s for s in card["sections"]]
    return card


async def test_twilio_call_pops_alices_full_card_then_answers_and_ends(demo_server: ServerProcess) -> None:
    """Voice webhook, then leg callbacks: alice gets the full card, call.answered, then call.ended."""
    sid = f"CA{uuid.uuid4().hex}"
    alice, bob = await agent_socket(demo_server, "alice"), await agent_socket(demo_server, "bob")
    async with alice, bob:
        voice = await post(demo_server, "/telephony/twilio/voice", {
            "CallSid": sid, "AccountSid": "AC" + "0" * 32, "From": CALLER, "To": TWILIO_NUMBER,
            "CallStatus": "ringing", "Direction": "inbound"})
        assert voice.status_code == 200, voice.text
        dial = ET.fromstring(voice.text).find("Dial")
        assert dial is not None and [(n.tag, n.text) for n in dial] == [("Client", "alice"), ("Client", "bob")]
        assert dial[0].get("statusCallback") == demo_server.url + "/telephony/twilio/status"

        def leg(agent: str, status: str) -> dict[str, str]:
            return {"CallSid": f"{sid}-{agent}", "ParentCallSid": sid, "From": CALLER, "To": f"client:{agent}",
                    "CallStatus": status, "Direction": "outbound-dial"}

        status_path = "/telephony/twilio/status"
        for params in (leg("alice", "ringing"), leg("bob", "ringing")):
            assert (await post(demo_server, status_path, params)).status_code == 204
        card = await complete_card(alice, sid)
        assert {s["name"]: s["status"] for s in card["sections"]} == {
            "customer": "ok", "balance": "ok", "purchases": "ok", "credit": "ok", "offers": "ok", "history": "ok"}
        assert card["sections"][0]["data"]["customer"]["phone"] == CALLER
        assert (await next_of(bob, "call.ringing", sid))["call"]["caller"]["e164"] == CALLER

        assert (await post(demo_server, status_path, leg("alice", "in-progress"))).status_code == 204
        assert await next_of(alice, "call.answered", sid) == {"type": "call.answered", "call_id": sid,
                                                              "agent": "alice"}
        assert (await next_of(bob, "call.withdrawn", sid))["call_id"] == sid
        await post(demo_server, status_path, leg("bob", "canceled"))
        ended = {"CallSid": sid, "From": CALLER, "To": TWILIO_NUMBER, "CallStatus": "completed",
                 "Direction": "inbound", "CallDuration": "42"}
        assert (await post(demo_server, status_path, ended)).status_code == 204
        assert (await next_of(alice, "call.ended", sid))["call_id"] == sid


async def test_tampered_or_wrongly_signed_twilio_requests_get_403(demo_server: ServerProcess) -> None:
    """A parameter changed after signing, or a signature made with another token, is refused with 403."""
    params = {"CallSid": f"CA{uuid.uuid4().hex}", "From": CALLER, "To": TWILIO_NUMBER, "CallStatus": "ringing"}
    tampered = await post(demo_server, "/telephony/twilio/voice", params, tamper={"From": "+14155550111"})
    assert tampered.status_code == 403 and "does not match" in tampered.json()["error"]
    other = await post(demo_server, "/telephony/twilio/status", {**params, "CallStatus": "completed"},
                       token="not-the-demo-token")
    assert other.status_code == 403 and "does not match" in other.json()["error"]
