"""The agent hub: delivers bus messages to the sockets of their recipients on this instance.

Every instance reads every agent message from the bus, and keeps a small view of each agent's active
calls (the cards as they fill), so an agent who connects or reloads on any instance gets a `snapshot` at
once. Each socket has a bounded send queue; a socket that cannot keep up is closed (the browser
reconnects and gets a fresh snapshot), so one slow browser never holds up the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, Protocol

from screenpop import protocol
from screenpop.bus import Bus
from screenpop.outbox import CHANNEL

log = logging.getLogger("screenpop.hub")

MAX_CALLS_PER_AGENT = 50
MAX_MESSAGES_PER_CALL = 200


class Peer(Protocol):
    """What the hub needs of a socket (Starlette's WebSocket has it)."""

    async def send_text(self, data: str) -> None: ...
    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


class Connection:
    """One agent socket with its own bounded queue. A writer task sends what waits, in order, and ends
    when nothing is left: a task exists only while the socket has something to send."""

    def __init__(self, agent_id: str, peer: Peer, maxsize: int = 256) -> None:
        self.agent_id = agent_id
        self.peer = peer
        self.maxsize = maxsize
        self.pending: deque[str] = deque()
        self.task: asyncio.Task[None] | None = None
        self.dead = False

    def push(self, text: str) -> bool:
        """Queue a message; False when the socket is too far behind (the caller closes it)."""
        if len(self.pending) >= self.maxsize:
            return False
        if self.dead:
            return True
        self.pending.append(text)
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._write())
        return True

    async def _write(self) -> None:
        """Send what waits, in order, then end."""
        try:
            while self.pending:
                await self.peer.send_text(self.pending[0])
                self.pending.popleft()
        except Exception as err:  # the socket went away
            self.dead = True
            self.pending.clear()
            log.debug("socket of %s closed while sending: %s", self.agent_id, err)
        finally:
            self.task = None


class AgentHub:
    """Routes agent messages from the bus to connected sockets, and remembers active cards."""

    def __init__(self, bus: Bus, channel: str = CHANNEL, call_ttl_s: float = 4 * 3600, *,
                 on_attach: Callable[[], None] | None = None) -> None:
        self.bus = bus
        self.channel = channel
        self.call_ttl_s = call_ttl_s
        self._conns: dict[str, set[Connection]] = {}
        # per agent, per active call: when it rang, and its messages as sent (replayed for a snapshot)
        self._cards: dict[str, OrderedDict[str, tuple[float, list[str]]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.delivered = 0
        self.delivered_by_type: dict[str, int] = {}
        # for the display latency: "<agent id>\0<call id>" -> when its card left (str keys: nothing for the GC)
        self._ringing_sent: OrderedDict[str, float] = OrderedDict()
        self.on_attach = on_attach  # a socket was attached (GcSettler.attached)

    # -- bus side --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Subscribe to the bus; returns once the subscription is active."""
        self._task = asyncio.create_task(self._run(), name="screenpop-hub")
        ready = asyncio.create_task(self._ready.wait())
        done, _ = await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            ready.cancel()
            self._task.result()  # raises what stopped it

    async def _run(self) -> None:
        async with self.bus.subscribe(self.channel) as sub:
            sub.listen(self._dispatch)  # where supported, each message is dispatched as it arrives: no hop
            self._ready.set()
            async for text in sub:
                self._dispatch(text)

    def _dispatch(self, text: str) -> None:
        try:
            self.dispatch(text)
        except Exception:
            log.exception("could not dispatch an agent message")

    async def close(self) -> None:
        """Stop reading the bus and close every socket with 1012 (service restart: the console reconnects, to
        another instance if this one is gone)."""
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for conns in list(self._conns.values()):
            for c in list(conns):
                await self._drop(c, 1012, "server restarting, reconnect")

    def dispatch(self, text: str) -> None:
        """Apply one envelope: remember it for the recipients' snapshots and queue it on their sockets.
        Reads only the envelope's header: the JSON is never parsed here."""
        recipients, kind, call_id, payload = protocol.open_envelope(text)
        self.delivered_by_type[kind] = self.delivered_by_type.get(kind, 0) + len(recipients)
        now = time.monotonic()
        if kind == "call.ringing":
            for agent_id in recipients:
                self._ringing_sent[f"{agent_id}\0{call_id}"] = now
            while len(self._ringing_sent) > 10_000:
                self._ringing_sent.popitem(last=False)
        for agent_id in recipients:
            self._remember(agent_id, kind, call_id, payload, now)
            for conn in list(self._conns.get(agent_id, ())):
                if conn.push(payload):
                    self.delivered += 1
                else:
                    log.warning("socket of %s is too slow; closing it (it will resync)", agent_id)
                    asyncio.get_running_loop().create_task(self._drop(conn, 1013, "too slow, reconnect"))

    def _remember(self, agent_id: str, kind: str, call_id: str, payload: str, now: float) -> None:
        cards = self._cards.setdefault(agent_id, OrderedDict())
        if kind == "call.ringing":
            cards.pop(call_id, None)
            cards[call_id] = (now, [payload])
            while len(cards) > MAX_CALLS_PER_AGENT:
                cards.popitem(last=False)
        elif kind in ("call.withdrawn", "call.ended"):
            cards.pop(call_id, None)
        elif (entry := cards.get(call_id)) is not None and len(entry[1]) < MAX_MESSAGES_PER_CALL:
            entry[1].append(payload)
        for old in [cid for cid, (t, _) in cards.items() if now - t > self.call_ttl_s]:
            del cards[old]
        if not cards:
            self._cards.pop(agent_id, None)

    @staticmethod
    def _replay(messages: list[str]) -> dict[str, Any] | None:
        """The card as the agent's browser has it after these messages (the first is its `call.ringing`)."""
        card = None
        for raw in messages:
            card = protocol.apply(card, json.loads(raw))
        return card

    # -- socket side -----------------------------------------------------------------------------
    def snapshot(self, agent_id: str) -> str:
        """The `snapshot` message for an agent: every active call, oldest first."""
        cards = [self._replay(messages) for _, messages in self._cards.get(agent_id, {}).values()]
        return protocol.snapshot([c for c in cards if c is not None])

    def attach(self, agent_id: str, peer: Peer) -> Connection:
        """Register a socket; its first queued message is the snapshot (atomic with registration)."""
        conn = Connection(agent_id, peer)
        conn.push(self.snapshot(agent_id))
        self._conns.setdefault(agent_id, set()).add(conn)
        if self.on_attach is not None:
            self.on_attach()
        return conn

    async def detach(self, conn: Connection) -> None:
        """Unregister a socket and stop its writer."""
        conns = self._conns.get(conn.agent_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._conns[conn.agent_id]
        if conn.task and not conn.task.done():
            conn.task.cancel()
            await asyncio.gather(conn.task, return_exceptions=True)

    async def _drop(self, conn: Connection, code: int, reason: str) -> None:
        await self.detach(conn)
        try:
            await conn.peer.close(code=code, reason=reason)
        except Exception as err:
            log.debug("closing a socket failed: %s", err)

    def acked(self, agent_id: str, call_id: str) -> float | None:
        """The agent's browser displayed the card: seconds since it was sent (None if unknown or repeated)."""
        sent = self._ringing_sent.pop(f"{agent_id}\0{call_id}", None)
        return None if sent is None else time.monotonic() - sent

    def socket_count(self) -> int:
        """Agent sockets open on this instance."""
        return sum(len(c) for c in self._conns.values())

    def connected(self, agent_id: str) -> int:
        """How many sockets this agent has open on this instance."""
        return len(self._conns.get(agent_id, ()))
