"""What the outside world does to a cluster: signed webhooks from a PBX, agent sockets of browsers.

`Webhooks` posts signed generic-webhook events (README: X-Screenpop-Signature) on one keep-alive client.
`AgentSocket` is one agent's console: it applies every message as the browser does, so a test reads the
cards the agent sees (`cards`), the cards taken away (`closed`), and every message received (`messages`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from telephony.generic import sign

CALLER = "+14155550100"


class Webhooks:
    """Signed `POST /telephony/webhook` events to one base URL (the balancer or one instance)."""

    def __init__(self, base_url: str, secret: str) -> None:
        self.url = f"{base_url}/telephony/webhook"
        self.secret = secret
        self._http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Webhooks:
        self._http = httpx.AsyncClient(timeout=10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def send(self, call_id: str, event: str, caller: str = CALLER, agents: list[str] | None = None,
                   at: str | None = None, called: str | None = None) -> httpx.Response:
        """POST one event; the response (202 when taken)."""
        body: dict[str, Any] = {"call_id": call_id, "event": event, "caller": caller}
        if agents is not None:
            body["agents"] = agents
        if at is not None:
            body["at"] = at
        if called is not None:
            body["called"] = called
        raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "X-Screenpop-Signature": sign(raw, self.secret)}
        if self._http is None:
            async with httpx.AsyncClient(timeout=10) as http:
                return await http.post(self.url, content=raw, headers=headers)
        return await self._http.post(self.url, content=raw, headers=headers)


class AgentSocket:
    """One agent's live socket: `async with AgentSocket(ws_url, token) as sock:` connects and reads the snapshot."""

    def __init__(self, ws_url: str, token: str, name: str = "") -> None:
        self.ws_url = ws_url
        self.token = token
        self.name = name
        self.messages: list[dict[str, Any]] = []
        self.snapshot: list[dict[str, Any]] | None = None  # the cards of the first message
        self.cards: dict[str, dict[str, Any]] = {}  # call id -> the card as the console shows it now
        self.closed: dict[str, dict[str, Any]] = {}  # call id -> the call.withdrawn / call.ended that took it
        self.close_code: int | None = None  # set when the server closed the socket
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> AgentSocket:
        self._ws = await connect(self.ws_url, additional_headers={"Authorization": f"Bearer {self.token}"},
                                 open_timeout=10, close_timeout=2)
        self._reader = asyncio.get_running_loop().create_task(self._read(), name=f"socket-{self.name}")
        await self.wait_for(lambda: self.snapshot is not None or self.close_code is not None, "the snapshot", 10)
        if self.snapshot is None:
            raise AssertionError(f"{self.name}: socket closed before its snapshot (code {self.close_code})")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                self.apply(json.loads(raw))
                async with self._changed:
                    self._changed.notify_all()
        except ConnectionClosed:
            pass
        self.close_code = self._ws.close_code if self._ws.close_code is not None else 1006
        async with self._changed:
            self._changed.notify_all()

    def apply(self, m: dict[str, Any]) -> None:
        """Apply one server message to the console's state, as the browser does."""
        self.messages.append(m)
        kind = m.get("type")
        if kind == "snapshot":
            self.snapshot = m["calls"]
            self.cards = {c["call_id"]: c for c in m["calls"]}
        elif kind == "call.ringing":
            self.cards[m["call"]["call_id"]] = m["call"]
            self.closed.pop(m["call"]["call_id"], None)
        elif kind == "card.section" and (card := self.cards.get(m["call_id"])) is not None:
            section = {k: v for k, v in m.items() if k not in ("type", "call_id")}
            card["sections"] = [section if s["name"] == m["name"] else s for s in card["sections"]]
        elif kind == "call.answered" and (card := self.cards.get(m["call_id"])) is not None:
            card["state"], card["answered_by"] = "answered", m.get("agent")
        elif kind in ("call.withdrawn", "call.ended"):
            self.cards.pop(m["call_id"], None)
            self.closed[m["call_id"]] = m

    # -- reading it -----------------------------------------------------------------------------
    def count(self, kind: str, call_id: str) -> int:
        """How many messages of `kind` this socket got for the call (one `call.ringing` = one pop)."""
        return sum(1 for m in self.messages if m.get("type") == kind
                   and (m.get("call_id") or m.get("call", {}).get("call_id")) == call_id)

    def sections(self, call_id: str) -> dict[str, str]:
        """The section statuses of an open card, by name ({} when the agent has no such card)."""
        card = self.cards.get(call_id)
        return {s["name"]: s["status"] for s in card["sections"]} if card else {}

    def complete(self, call_id: str) -> bool:
        """True when the agent has the card open and none of its sections is pending."""
        statuses = self.sections(call_id)
        return bool(statuses) and "pending" not in statuses.values()

    async def wait_for(self, ready: Callable[[], bool], what: str, timeout_s: float = 10) -> None:
        """Until `ready()` holds; AssertionError naming `what` and the agent's cards when time runs out."""
        try:
            async with asyncio.timeout(timeout_s), self._changed:
                await self._changed.wait_for(lambda: ready() or self.close_code is not None)
        except TimeoutError:
            pass
        if not ready():
            raise AssertionError(f"{self.name}: no {what} within {timeout_s} s (socket closed: {self.close_code}); "
                                 f"cards {json.dumps(self.cards)[:1500]}; last messages "
                                 f"{json.dumps(self.messages[-5:])[:1500]}")

    async def wait_complete(self, call_id: str, timeout_s: float = 10) -> dict[str, Any]:
        """Until the agent has the card open with every section settled; the card."""
        await self.wait_for(lambda: self.complete(call_id), f"complete card {call_id}", timeout_s)
        return self.cards[call_id]

    async def wait_closed(self, call_id: str, timeout_s: float = 10) -> dict[str, Any]:
        """Until the card was taken away (withdrawn or ended); the message that took it."""
        await self.wait_for(lambda: call_id in self.closed, f"end or withdrawal of {call_id}", timeout_s)
        return self.closed[call_id]
