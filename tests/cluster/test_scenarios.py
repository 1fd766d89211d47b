"""Issue 11's scenarios: three instances behind HAProxy in round-robin, every telephony event of a call through the
balancer (so the events of one call land on different instances). Each test reads every agent's final state:
each card seen once, in the right state, nothing lost, and no ghost card in any instance's snapshot."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from screenpop.sessions import SESSION_ENDED
from tests.cluster.harness import Cluster, new_call_id

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]


def at(seconds: float) -> str:
    """An event time `seconds` from now, ISO-8601."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def no_ghosts(cluster: Cluster, *agents: str) -> None:
    """No agent has a card left in the snapshot of any live instance, but an ended call whose wrap-up they
    owe (they had it answered when it ended)."""
    for agent in agents:
        for i, inst in enumerate(cluster.instances):
            if inst.alive:
                left = [(c["state"], c["answered_by"]) for c in await cluster.snapshot(agent, via=i)]
                assert all(card == ("ended", agent) for card in left), f"{agent} on instance {i}: {left}"


async def test_ring_group_answered_elsewhere(cluster: Cluster) -> None:
    """offered, ringing for alice and bob, answered by alice, ended, round-robin: alice's card complete,
    answered, ended; bob's withdrawn; one pop each; no ghost."""
    call_id = new_call_id("rg")
    async with cluster.socket("alice", via=0) as alice, cluster.socket("bob", via=1) as bob, \
            cluster.webhooks() as hooks:
        assert (await hooks.send(call_id, "offered")).status_code == 202
        assert (await hooks.send(call_id, "ringing", agents=["1001", "1002"])).status_code == 202
        await alice.wait_complete(call_id)
        await bob.wait_complete(call_id)
        assert (await hooks.send(call_id, "answered", agents=["1001"])).status_code == 202
        assert (await bob.wait_closed(call_id))["type"] == "call.withdrawn"
        await alice.wait_for(lambda: alice.cards[call_id]["state"] == "answered", "answered card")
        assert (await hooks.send(call_id, "ended")).status_code == 202
        assert (await alice.wait_closed(call_id))["type"] == "call.ended"
    assert alice.count("call.ringing", call_id) == 1 and bob.count("call.ringing", call_id) == 1
    assert bob.count("call.ended", call_id) == 0 and alice.count("call.ended", call_id) == 1
    await no_ghosts(cluster, "alice", "bob")


async def test_transfer(cluster: Cluster) -> None:
    """Answered by alice, then ringing at bob (a transfer) and answered by him: alice's card is withdrawn,
    bob's says it came from alice; one pop each; no ghost after the end."""
    call_id = new_call_id("tr")
    async with cluster.socket("alice", via=2) as alice, cluster.socket("bob", via=0) as bob, \
            cluster.webhooks() as hooks:
        for event, agents in (("offered", None), ("ringing", ["1001"]), ("answered", ["1001"])):
            assert (await hooks.send(call_id, event, agents=agents)).status_code == 202
        await alice.wait_for(lambda: alice.cards.get(call_id, {}).get("state") == "answered", "answered card")
        assert (await hooks.send(call_id, "ringing", agents=["1002"])).status_code == 202
        await bob.wait_complete(call_id)
        assert bob.cards[call_id]["transferred_from"] == "alice"
        assert (await hooks.send(call_id, "answered", agents=["1002"])).status_code == 202
        assert (await alice.wait_closed(call_id))["type"] == "call.withdrawn"
        assert (await hooks.send(call_id, "ended")).status_code == 202
        assert (await bob.wait_closed(call_id))["type"] == "call.ended"
    assert alice.count("call.ringing", call_id) == 1 and bob.count("call.ringing", call_id) == 1
    await no_ghosts(cluster, "alice", "bob")


async def test_duplicate_reordered_and_retried_events(cluster: Cluster) -> None:
    """Each event twice on different instances, an old `ringing` after `answered` (by `at`), and a PBX retry of
    `ringing` naming the agent who answered: each agent sees the card once and bob never again after it was
    answered."""
    call_id = new_call_id("dup")
    async with cluster.socket("alice", via=1) as alice, cluster.socket("bob", via=2) as bob:
        send = cluster.event
        for via in (0, 1):
            assert (await send(call_id, "offered", via=via, at=at(-3))).status_code == 202
        for via in (1, 2):
            assert (await send(call_id, "ringing", via=via, agents=["1001", "1002"], at=at(-2))).status_code == 202
        await alice.wait_complete(call_id)
        for via in (2, 0):
            assert (await send(call_id, "answered", via=via, agents=["1001"], at=at(-1))).status_code == 202
        await bob.wait_closed(call_id)
        assert (await send(call_id, "ringing", via=0, agents=["1001", "1002"], at=at(-2))).status_code == 202
        assert (await send(call_id, "ringing", via=1, agents=["1001", "1002"], at=at(0))).status_code == 202
        # a marker call rung for bob after the retries: one channel carries every message in the order stored,
        # so a wrong re-pop of the first call would have reached bob before the marker's card
        marker = new_call_id("marker")
        assert (await send(marker, "ringing", via=2, agents=["1002"])).status_code == 202
        await bob.wait_for(lambda: marker in bob.cards, "the marker call's card")
        assert bob.count("call.ringing", call_id) == 1 and call_id not in bob.cards
        assert alice.cards[call_id]["state"] == "answered" and alice.count("call.ringing", call_id) == 1
        assert alice.count("call.answered", call_id) == 1
        for via in (2, 1):
            assert (await send(call_id, "ended", via=via)).status_code == 202
        await alice.wait_closed(call_id)
        assert (await send(marker, "ended", via=0)).status_code == 202
        await bob.wait_closed(marker)
    assert alice.count("call.ended", call_id) == 1
    await no_ghosts(cluster, "alice", "bob")


async def test_lookup_instance_killed_mid_call(cluster_factory: type) -> None:
    """The instance running a call's lookup is SIGKILLed mid-lookup: another finishes the card within the deadline
    (no section stays pending), and an `ended` sent to a survivor closes it everywhere."""
    cluster: Cluster = cluster_factory(n=3, deadline_ms=3000)
    cluster.backend.set_latency(balance=2000, orders=2000, credit=2000)
    call_id = new_call_id("kill")
    async with cluster.socket("alice", via=1) as alice:
        assert (await cluster.event(call_id, "offered", via=0)).status_code == 202
        assert (await cluster.event(call_id, "ringing", via=2, agents=["1001"])).status_code == 202
        await alice.wait_for(lambda: call_id in alice.cards, "ringing card")
        await asyncio.to_thread(cluster.instances[0].kill)
        card = await alice.wait_complete(call_id, timeout_s=15)
        assert set(alice.sections(call_id)) == {"customer", "balance", "orders", "credit"}
        assert "pending" not in {s["status"] for s in card["sections"]}
        assert (await cluster.event(call_id, "ended", via=2)).status_code == 202
        assert (await alice.wait_closed(call_id))["type"] == "call.ended"
    assert alice.count("call.ringing", call_id) == 1
    await no_ghosts(cluster, "alice")


async def test_sigterm_under_load(cluster_factory: type) -> None:
    """20 calls/s through the balancer, one instance SIGTERMed in the middle: every call's card reaches its agent
    once, complete, and is closed; every webhook is taken (202); no ghost card."""
    cluster: Cluster = cluster_factory(n=3)
    extension = {"alice": "1001", "bob": "1002", "carol": "1003"}
    socks = {"alice": cluster.socket("alice", via=0), "bob": cluster.socket("bob", via=1),
             "carol": cluster.socket("carol", via=0)}  # none on instance 2, the one stopped
    calls: dict[str, str] = {}
    async with socks["alice"], socks["bob"], socks["carol"], cluster.webhooks() as hooks:
        stopping: asyncio.Task[object] | None = None
        for n in range(60):  # 3 s at 20 calls/s
            name = ("alice", "bob", "carol")[n % 3]
            call_id = new_call_id(f"t{n}")
            calls[call_id] = name
            for event, agents in (("offered", None), ("ringing", [extension[name]])):
                r = await hooks.send(call_id, event, agents=agents)
                assert r.status_code == 202, (n, event, r.status_code, r.text)
            if n == 20:
                stopping = asyncio.create_task(asyncio.to_thread(cluster.instances[2].terminate))
            await asyncio.sleep(0.05)
        assert stopping is not None
        await stopping
        for call_id, name in calls.items():
            await socks[name].wait_complete(call_id, timeout_s=15)
        for call_id in calls:
            assert (await hooks.send(call_id, "ended")).status_code == 202
        for call_id, name in calls.items():
            await socks[name].wait_closed(call_id)
    for call_id, name in calls.items():
        assert socks[name].count("call.ringing", call_id) == 1, call_id
    await no_ghosts(cluster, *extension)


async def send_until_taken(cluster: Cluster, call_id: str, event: str, timeout_s: float = 20, **fields: object) -> None:
    """Send an event through the balancer as a PBX with retries would: again after a 5xx or a refused connection,
    until it is taken (202)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            r = await cluster.event(call_id, event, **fields)  # type: ignore[arg-type]
            if r.status_code == 202:
                return
            assert r.status_code >= 500, (r.status_code, r.text)
        except OSError:
            pass
        assert asyncio.get_running_loop().time() < deadline, f"{event} of {call_id} never taken"
        await asyncio.sleep(0.2)


async def redis_down(port: int, timeout_s: float = 10) -> None:
    """Until Redis on `port` refuses connections (bounded)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return
        writer.close()
        await writer.wait_closed()
        assert asyncio.get_running_loop().time() < deadline, f"Redis on {port} still answers"
        await asyncio.sleep(0.02)


async def test_redis_restarted_while_calls_ring(cluster_factory: type) -> None:
    """Redis crashes (its data lost) for 2 s while calls ring: the sessions kept there are gone, so alice's
    console is sent back to login (4401); logged in again, a call that rang meanwhile reaches her, a call
    that ended meanwhile is closed on her console and in every snapshot."""
    cluster: Cluster = cluster_factory(n=2, replicas=0, sentinels=0)
    before, during = new_call_id("before"), new_call_id("during")
    async with cluster.socket("alice", via=1) as alice:
        await send_until_taken(cluster, before, "ringing", agents=["1001"])
        await alice.wait_complete(before)
        port = cluster.redis.primary.port
        restart = asyncio.create_task(asyncio.to_thread(cluster.redis.restart_primary, 2.0, False))
        await redis_down(port)
        await send_until_taken(cluster, before, "ended")
        await send_until_taken(cluster, during, "ringing", agents=["1001"])
        await restart
        await alice.wait_for(lambda: alice.close_code == SESSION_ENDED, "the session ended", timeout_s=20)
    cluster.forget_token("alice")  # log in again
    async with cluster.socket("alice", via=1) as alice:
        await alice.wait_complete(during, timeout_s=20)
        await alice.wait_for(lambda: before not in alice.cards, f"{before} closed", timeout_s=20)
        await send_until_taken(cluster, during, "ended")
        await alice.wait_for(lambda: during not in alice.cards, f"{during} closed", timeout_s=20)
    await no_ghosts(cluster, "alice")
