"""The agent hub: routing envelopes to sockets, snapshots from the store, resyncs, slow sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from screenpop import protocol
from screenpop.bus.memory import MemoryBus
from screenpop.hub import AgentHub
from screenpop.outbox import Outbox


class Peer:
    """A socket stand-in that records what it is sent; `stuck` makes every send wait forever."""

    def __init__(self, stuck: bool = False) -> None:
        self.sent: list[dict] = []
        self.closed_with: int | None = None
        self.stuck = stuck
        self.got = asyncio.Event()

    async def send_text(self, data: str) -> None:
        if self.stuck:
            await asyncio.Event().wait()
        self.sent.append(json.loads(data))
        self.got.set()

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed_with = code


CARD = {"call_id": "c1", "state": "ringing", "customer": None, "candidates": [], "answered_by": None,
        "sections": [{"name": "customer", "status": "pending"}, {"name": "balance", "status": "pending"}]}


def msg(to: list[str], m: dict) -> str:
    call_id = m.get("call_id") or m.get("call", {}).get("call_id", "")
    return protocol.envelope(to, protocol.Message(m["type"], call_id, json.dumps(m)))


async def drain() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_only_recipients_receive() -> None:
    """A message for alice reaches both her sockets and not bob's."""
    hub = AgentHub(MemoryBus())
    a1, a2, b = Peer(), Peer(), Peer()
    for agent, peer in (("alice", a1), ("alice", a2), ("bob", b)):
        await hub.attach(agent, peer)
    hub.dispatch(msg(["alice"], {"type": "call.ringing", "call": CARD}))
    await drain()
    assert [m["type"] for m in a1.sent] == ["snapshot", "call.ringing"] == [m["type"] for m in a2.sent]
    assert [m["type"] for m in b.sent] == ["snapshot"]


async def test_snapshot_comes_from_the_store_before_anything_sent_meanwhile() -> None:
    """A socket's first message is the agent's cards from the snapshot source; a message dispatched while the
    store is read is written after the snapshot, not lost."""
    gate = asyncio.Event()

    async def cards(agent_id: str) -> list[dict]:
        await gate.wait()
        return [dict(CARD)] if agent_id == "alice" else []

    hub = AgentHub(MemoryBus(), snapshots=cards)
    peer = Peer()
    attaching = asyncio.create_task(hub.attach("alice", peer))
    await drain()
    hub.dispatch(msg(["alice"], {"type": "call.ended", "call_id": "c1"}))
    gate.set()
    await attaching
    await drain()
    assert [m["type"] for m in peer.sent] == ["snapshot", "call.ended"]
    assert [c["call_id"] for c in peer.sent[0]["calls"]] == ["c1"]


async def test_a_store_that_fails_closes_the_socket_and_a_resync_sends_fresh_snapshots() -> None:
    """When the snapshot cannot be read the socket is closed with 1013; `resync` sends every socket a new
    snapshot (what the hub does when the bus subscription comes back)."""
    fail = True

    async def cards(agent_id: str) -> list[dict]:
        if fail:
            raise OSError("store away")
        return []

    hub = AgentHub(MemoryBus(), snapshots=cards)
    lost = Peer()
    await hub.attach("alice", lost)
    assert lost.closed_with == 1013 and hub.connected("alice") == 0
    fail = False
    peer = Peer()
    await hub.attach("alice", peer)
    await hub.resync()
    await drain()
    assert [m["type"] for m in peer.sent] == ["snapshot", "snapshot"]


async def test_slow_socket_is_closed_and_others_keep_receiving() -> None:
    """A socket that stops reading is closed with 1013 once its queue fills; a healthy one is unaffected."""
    hub = AgentHub(MemoryBus())
    slow, fast = Peer(stuck=True), Peer()
    await hub.attach("alice", slow)
    await hub.attach("alice", fast)
    for i in range(300):
        hub.dispatch(msg(["alice"], {"type": "call.ended", "call_id": f"x{i}"}))
        await asyncio.sleep(0)
    await drain()
    assert slow.closed_with == 1013
    assert len(fast.sent) == 301
    assert hub.connected("alice") == 1


@contextlib.asynccontextmanager
async def flow(bus: MemoryBus) -> AsyncIterator[tuple[Outbox, Peer]]:
    """Outbox -> bus -> hub running, with alice's socket attached; all stopped on exit."""
    await bus.connect()
    hub = AgentHub(bus)
    await hub.start()
    outbox = Outbox(bus)
    outbox.start()
    peer = Peer()
    await hub.attach("alice", peer)
    try:
        yield outbox, peer
    finally:
        await outbox.close()
        await hub.close()
        await bus.disconnect()


async def received(peer: Peer, count: int) -> None:
    async with asyncio.timeout(5):
        while len(peer.sent) < count:
            peer.got.clear()
            await peer.got.wait()


async def test_messages_cross_the_bus_in_order() -> None:
    """Outbox -> memory bus -> hub keeps publication order for one recipient."""
    async with flow(MemoryBus()) as (outbox, peer):
        for i in range(50):
            await outbox.send(["alice"], protocol.ended(str(i), "over"))
        await received(peer, 51)
        assert [m["call_id"] for m in peer.sent[1:]] == [str(i) for i in range(50)]


async def test_a_writable_socket_gets_its_messages_and_keeps_no_task() -> None:
    """Messages reach a socket that can take them, in order, and no writer task stays once all is sent."""
    hub = AgentHub(MemoryBus())
    peer = Peer()
    conn = await hub.attach("alice", peer)
    hub.dispatch(msg(["alice"], {"type": "call.ended", "call_id": "x"}))
    hub.dispatch(msg(["alice"], {"type": "call.ended", "call_id": "y"}))
    await drain()
    assert [m["type"] for m in peer.sent] == ["snapshot", "call.ended", "call.ended"]
    assert [m["call_id"] for m in peer.sent[1:]] == ["x", "y"]
    assert conn.task is None


class GatedPeer(Peer):
    """A socket whose sends wait while `gate` is closed, as a flow-controlled socket does."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.cancelled = False

    async def send_text(self, data: str) -> None:
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        await super().send_text(data)


async def test_a_send_that_waits_holds_the_next_ones_and_order_is_kept() -> None:
    """While a send waits (a flow-controlled socket), later messages wait behind it and follow in order."""
    hub = AgentHub(MemoryBus())
    peer = GatedPeer()
    conn = await hub.attach("alice", peer)  # the snapshot's send waits at the gate
    for i in range(3):
        hub.dispatch(msg(["alice"], {"type": "call.ended", "call_id": str(i)}))
    await drain()
    assert peer.sent == []
    peer.gate.set()
    await drain()
    assert [m["type"] for m in peer.sent] == ["snapshot", "call.ended", "call.ended", "call.ended"]
    assert [m["call_id"] for m in peer.sent[1:]] == ["0", "1", "2"]
    assert conn.task is None and not conn.pending


async def test_detach_cancels_a_send_that_waits() -> None:
    """Detaching a socket whose send is suspended cancels that send inside the socket's own coroutine."""
    hub = AgentHub(MemoryBus())
    peer = GatedPeer()
    conn = await hub.attach("alice", peer)
    await drain()
    await hub.detach(conn)
    assert peer.cancelled and peer.sent == []


class FlakyBus(MemoryBus):
    """A memory bus whose next `failures` publishes raise."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def publish(self, channel: str, message: str) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("bus hiccup")
        await super().publish(channel, message)


async def test_a_message_sent_during_a_retry_does_not_overtake_it() -> None:
    """On an in-process bus a send publishes at once, except while earlier messages wait for a retry."""
    async with flow(FlakyBus(failures=2)) as (outbox, peer):  # the inline publish of "0" fails, then a retry
        await outbox.send(["alice"], protocol.ended("0", "over"))
        await drain()  # the outbox task has taken "0" and sleeps before retrying it
        assert peer.sent[1:] == []  # "0" is not out yet: the case this test is about
        for i in range(1, 4):
            await outbox.send(["alice"], protocol.ended(str(i), "over"))
        await received(peer, 5)
        assert [m["call_id"] for m in peer.sent[1:]] == ["0", "1", "2", "3"]
        assert outbox.published == 4 and outbox.failed == 0


class Routing:
    """A call store's routing stand-in: records each `present` in `log`, which the snapshots join."""

    def __init__(self, route: str = "agents:i1", fail: bool = False) -> None:
        self.route, self.fail, self.log = route, fail, []

    async def present(self, agent_ids) -> None:  # type: ignore[no-untyped-def]
        if self.fail:
            raise OSError("redis is down")
        self.log.append(("present", sorted(agent_ids)))

    async def snapshots(self, agent_id: str) -> list:
        self.log.append(("snapshot", agent_id))
        return []


async def test_with_routing_an_agent_is_present_before_its_snapshot_is_read_and_the_route_is_heard() -> None:
    """Routing: attach says where the agent is before reading the snapshot, and messages on the instance's
    own channel reach the socket."""
    bus, routing = MemoryBus(), Routing()
    await bus.connect()
    hub = AgentHub(bus, "agents", snapshots=routing.snapshots, routing=routing)
    await hub.start()
    try:
        alice = Peer()
        await hub.attach("alice", alice)
        await bus.publish("agents:i1", msg(["alice"], {"type": "call.ringing", "call": CARD}))
        await drain()
    finally:
        await hub.close()
    assert routing.log == [("present", ["alice"]), ("snapshot", "alice")]
    assert [m["type"] for m in alice.sent] == ["snapshot", "call.ringing"]


async def test_with_routing_a_resync_says_again_where_every_agent_is_first() -> None:
    """Routing: a resync renews every local agent's presence before reading their snapshots; when it cannot,
    their sockets are closed with 1013 (they reconnect) instead of waiting for messages that never come."""
    routing = Routing()
    hub = AgentHub(MemoryBus(), "agents", snapshots=routing.snapshots, routing=routing)
    alice, bob = Peer(), Peer()
    await hub.attach("alice", alice)
    await hub.attach("bob", bob)
    routing.log.clear()
    await hub.resync()
    assert routing.log == [("present", ["alice", "bob"]), ("snapshot", "alice"), ("snapshot", "bob")]
    routing.fail = True
    carol = Peer()
    await hub.attach("carol", carol)  # attach cannot say where carol is: closed at once
    await hub.resync()
    assert (alice.closed_with, bob.closed_with, carol.closed_with) == (1013, 1013, 1013)
    assert hub.socket_count() == 0


async def test_a_reconnect_during_a_resync_runs_it_once_more() -> None:
    """Two subscriptions coming back one after the other: the second, arriving while the first's resync
    runs, gets a resync of its own after it (the first may have read the store too early)."""
    hub = AgentHub(MemoryBus())
    started, go = asyncio.Event(), asyncio.Event()
    runs = 0

    async def resync() -> None:
        nonlocal runs
        runs += 1
        started.set()
        await go.wait()

    hub.resync = resync  # type: ignore[method-assign]
    hub._reconnected()
    await started.wait()
    hub._reconnected()
    go.set()
    assert hub._resync is not None
    await hub._resync
    assert runs == 2


async def test_a_bundle_is_delivered_message_by_message_in_order() -> None:
    """A bus message on the instance's route holding several envelopes (the store's bundle) reaches each
    recipient in the bundle's order; a NUL in a call id cannot split an envelope."""
    bus, routing = MemoryBus(), Routing()
    await bus.connect()
    hub = AgentHub(bus, "agents", snapshots=routing.snapshots, routing=routing)
    await hub.start()
    try:
        alice, bob = Peer(), Peer()
        await hub.attach("alice", alice)
        await hub.attach("bob", bob)
        ringing = protocol.envelope(["alice"], protocol.Message("call.ringing", "c\x001", json.dumps(
            {"type": "call.ringing", "call": CARD})))
        assert protocol.unbundle(ringing) == [ringing]
        section = msg(["alice", "bob"], {"type": "card.section", "call_id": "c1", "name": "balance"})
        await bus.publish("agents:i1", protocol.BUNDLE_SEP.join([ringing, section]))
        await drain()
    finally:
        await hub.close()
    assert [m["type"] for m in alice.sent] == ["snapshot", "call.ringing", "card.section"]
    assert [m["type"] for m in bob.sent] == ["snapshot", "card.section"]
