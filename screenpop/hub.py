"""The agent hub: delivers bus messages to the sockets of their recipients on this instance.

Every instance reads the agent messages of the bus (with the call store's routing, only those of agents
it holds sockets of: it says where they are before reading a socket's snapshot, and again every
`refresh_s` and after a reconnect) and writes them to their recipients' sockets here. A
socket's first message is a `snapshot` of the agent's active cards, read from the call store (shared by
the instances), so a socket on any instance, started a second ago or not, gets the right cards. When the
bus subscription comes back after a lost connection (messages published meanwhile are lost), every socket
gets a fresh snapshot from the store: the console takes a snapshot as the truth (a call missing from it is
closed). Each socket has a bounded send queue; a socket that cannot keep up is closed (the browser
reconnects and gets a fresh snapshot), so one slow browser never holds up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import Any, Protocol

from screenpop import protocol
from screenpop.bus import Bus
from screenpop.outbox import CHANNEL

log = logging.getLogger("screenpop.hub")

Snapshots = Callable[[str], Awaitable[list[Any]]]
"""An agent's active cards (Card models or their JSON form), oldest first: `CallStore.active`."""


async def _no_cards(agent_id: str) -> list[Any]:
    return []


class Routing(Protocol):
    """Where the store routes agent messages (the call store: `route`, `present`)."""

    route: str | None

    async def present(self, agent_ids: Iterable[str]) -> None: ...


REFRESH_S = 30.0  # how often the hub says again where its agents are (well within the store's presence time)


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
        self.held = False  # while its snapshot is read: messages queue, nothing is written

    def push(self, text: str) -> bool:
        """Queue a message; False when the socket is too far behind (the caller closes it)."""
        if len(self.pending) >= self.maxsize:
            return False
        if self.dead:
            return True
        self.pending.append(text)
        if self.task is None and not self.held:
            self.task = asyncio.get_running_loop().create_task(self._write())
        return True

    def release(self, first: str | None) -> None:
        """Put `first` (a snapshot) before what queued while held, and start writing."""
        self.held = False
        if first is not None and not self.dead:
            self.pending.appendleft(first)
        if self.pending and self.task is None and not self.dead:
            self.task = asyncio.get_running_loop().create_task(self._write())

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

    def __init__(self, bus: Bus, channel: str = CHANNEL, *, snapshots: Snapshots = _no_cards,
                 on_attach: Callable[[], None] | None = None, routing: Routing | None = None,
                 refresh_s: float = REFRESH_S) -> None:
        self.bus = bus
        self.channel = channel
        self.snapshots = snapshots
        # with a route, the store sends this instance only the messages of agents it holds sockets of
        self.routing = routing if routing is not None and routing.route is not None else None
        self.refresh_s = refresh_s
        self._refresher: asyncio.Task[None] | None = None
        self._conns: dict[str, set[Connection]] = {}
        self._resync: asyncio.Task[None] | None = None
        self._again = False  # a subscription came back while a resync ran: run it once more
        self.resyncs = 0
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
        readers: list[tuple[str, Callable[[str], None]]] = [(self.channel, self._dispatch)]
        if self.routing is not None and self.routing.route is not None:  # the store's bundles come on the route
            readers.append((self.routing.route, self._dispatch_bundle))
        async with contextlib.AsyncExitStack() as stack:
            subs = []
            for channel, handle in readers:
                sub = await stack.enter_async_context(self.bus.subscribe(channel))
                sub.on_reconnect(self._reconnected)
                sub.listen(handle)  # where supported, each message is dispatched as it arrives: no hop
                subs.append((sub, handle))
            if self.routing is not None:
                self._refresher = asyncio.create_task(self._refresh(), name="screenpop-hub-presence")
            self._ready.set()
            await asyncio.gather(*(self._drain(sub, handle) for sub, handle in subs))

    async def _drain(self, sub: AsyncIterable[str], handle: Callable[[str], None]) -> None:
        async for text in sub:
            handle(text)

    async def _refresh(self) -> None:
        """Say again, every `refresh_s`, where this instance's agents are (their presence would end)."""
        assert self.routing is not None
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.routing.present(list(self._conns))
            except Exception as err:
                log.warning("could not say where this instance's agents are (%s); trying again in %.0f s",
                            err, self.refresh_s)

    def _dispatch(self, text: str) -> None:
        try:
            self.dispatch(text)
        except Exception:
            log.exception("could not dispatch an agent message")

    def _dispatch_bundle(self, text: str) -> None:
        """A message of this instance's route: the envelopes of one change for the agents held here."""
        for part in protocol.unbundle(text):
            self._dispatch(part)

    def _reconnected(self) -> None:
        """A subscription came back: what was published meanwhile is lost; resync every socket (once more
        after the resync under way, if there is one: it may have read the store before this one was back)."""
        if self._resync is None or self._resync.done():
            self._resync = asyncio.get_running_loop().create_task(self._resyncs(), name="screenpop-hub-resync")
        else:
            self._again = True

    async def _resyncs(self) -> None:
        while True:
            self._again = False
            await self.resync()
            if not self._again:
                return

    async def resync(self) -> None:
        """Send every socket on this instance a fresh snapshot from the store (with routing, after saying
        again where this instance's agents are: a restarted Redis forgot it)."""
        self.resyncs += 1
        if self.routing is not None and self._conns:
            try:
                await self.routing.present(list(self._conns))
            except Exception as err:
                log.warning("resync: could not say where this instance's agents are (%s); closing their "
                            "sockets (they reconnect)", err)
                for conns in list(self._conns.values()):
                    for conn in list(conns):
                        await self._drop(conn, 1013, "try again")
                return
        for agent_id, conns in list(self._conns.items()):
            try:
                text = protocol.snapshot(await self.snapshots(agent_id))
            except Exception as err:
                log.warning("resync of %s failed (%s); closing its sockets (they reconnect)", agent_id, err)
                for conn in list(conns):
                    await self._drop(conn, 1013, "try again")
                continue
            for conn in list(self._conns.get(agent_id, ())):
                if not conn.push(text):
                    await self._drop(conn, 1013, "too slow, reconnect")

    async def close(self) -> None:
        """Stop reading the bus and close every socket with 1012 (service restart: the console reconnects, to
        another instance if this one is gone)."""
        for task in (self._task, self._resync, self._refresher):
            if task:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        for conns in list(self._conns.values()):
            for c in list(conns):
                await self._drop(c, 1012, "server restarting, reconnect")

    def dispatch(self, text: str) -> None:
        """Queue one envelope's message on its recipients' sockets. Reads only the envelope's header: the
        JSON is never parsed here."""
        recipients, kind, call_id, payload = protocol.open_envelope(text)
        self.delivered_by_type[kind] = self.delivered_by_type.get(kind, 0) + len(recipients)
        now = time.monotonic()
        if kind == "call.ringing":
            for agent_id in recipients:
                self._ringing_sent[f"{agent_id}\0{call_id}"] = now
            while len(self._ringing_sent) > 10_000:
                self._ringing_sent.popitem(last=False)
        for agent_id in recipients:
            for conn in list(self._conns.get(agent_id, ())):
                if conn.push(payload):
                    self.delivered += 1
                else:
                    log.warning("socket of %s is too slow; closing it (it will resync)", agent_id)
                    asyncio.get_running_loop().create_task(self._drop(conn, 1013, "too slow, reconnect"))

    # -- socket side -----------------------------------------------------------------------------
    async def snapshot(self, agent_id: str) -> str:
        """The `snapshot` message for an agent: every active call as stored, oldest first."""
        return protocol.snapshot(await self.snapshots(agent_id))

    async def attach(self, agent_id: str, peer: Peer) -> Connection:
        """Register a socket; its first message is the snapshot. The socket is registered before the store
        is read, and what arrives meanwhile is written after the snapshot, so nothing falls in between (a
        message the snapshot already reflects may come once more: applying it again changes nothing).
        When the store cannot be read, the socket is closed with 1013 (the browser reconnects)."""
        conn = Connection(agent_id, peer)
        conn.held = True
        self._conns.setdefault(agent_id, set()).add(conn)
        try:
            if self.routing is not None:  # first: every change stored from now on is routed here
                await self.routing.present([agent_id])
            text = await self.snapshot(agent_id)
        except Exception as err:
            log.warning("snapshot of %s failed (%s); closing the socket (it reconnects)", agent_id, err)
            await self._drop(conn, 1013, "try again")
            return conn
        conn.release(text)
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
