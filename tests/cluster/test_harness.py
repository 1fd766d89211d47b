"""The cluster harness itself, on today's behaviour: the balancer spreads and fails over, the bus crosses
instances, Sentinel fails Redis over. The issue-11 scenarios are written on the same harness."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from tests.cluster.harness import Cluster, new_call_id
from tests.cluster.redisrig import RedisRig

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]


def delta(after: list[int | None], before: list[int | None]) -> list[int | None]:
    """Per instance, after minus before (None where an instance did not answer)."""
    return [None if a is None or b is None else a - b for a, b in zip(after, before, strict=True)]


async def end_everywhere(cluster: Cluster, call_ids: list[str]) -> None:
    """Send `ended` for each call to every live instance directly, so no call is left behind."""
    for i, inst in enumerate(cluster.instances):
        if inst.alive:
            async with cluster.webhooks(via=i) as hooks:
                for call_id in call_ids:
                    assert (await hooks.send(call_id, "ended")).status_code == 202


async def test_round_robin_reaches_every_instance(cluster: Cluster) -> None:
    """Through HAProxy, 3N new calls land N on each instance (by each /healthz's events, and by HAProxy)."""
    n = len(cluster.instances)
    calls_before, sessions_before = cluster.events(), cluster.lb.sessions()
    call_ids = [new_call_id("rr") for _ in range(3 * n)]
    async with cluster.webhooks() as hooks:
        for call_id in call_ids:
            r = await hooks.send(call_id, "offered")
            assert r.status_code == 202, r.text
    calls = delta(cluster.events(), calls_before)
    sessions = delta([*cluster.lb.sessions()], [*sessions_before])
    await end_everywhere(cluster, call_ids)
    assert calls == [3] * n, f"new calls per instance: {calls}"
    assert sessions == [3] * n, f"HAProxy sessions per instance: {sessions}"


async def test_card_crosses_instances(cluster: Cluster) -> None:
    """Every event of a call posted to instance 0, alice's socket on instance 1: she gets the card complete, answered,
    then ended, once; a socket opened afterwards on instance 2 shows the ended card only (her wrap-up is owed)."""
    call_id = new_call_id("x")
    async with cluster.socket("alice", via=1) as alice, cluster.webhooks(via=0) as hooks:
        for event, agents in (("offered", None), ("ringing", ["1001"]), ("answered", ["1001"])):
            assert (await hooks.send(call_id, event, agents=agents)).status_code == 202
        card = await alice.wait_complete(call_id)
        await alice.wait_for(lambda: alice.cards[call_id]["state"] == "answered", "answered card")
        assert {s["name"]: s["status"] for s in card["sections"]} == {
            "customer": "ok", "balance": "ok", "orders": "ok", "credit": "ok"}
        assert (await hooks.send(call_id, "ended")).status_code == 202
        assert (await alice.wait_closed(call_id))["type"] == "call.ended"
    assert alice.count("call.ringing", call_id) == 1
    assert [(c["call_id"], c["state"]) for c in await cluster.snapshot("alice", via=2)] == [(call_id, "ended")]


async def test_socket_through_the_balancer(cluster: Cluster) -> None:
    """Login and the agent socket work through HAProxy (websocket upgrade, tunnel): bob gets a card and its end."""
    call_id = new_call_id("ws")
    token = cluster.login("bob")  # through the balancer, with the config's password
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:  # valid on another instance
        assert (await http.get(f"{cluster.base_url(1)}/api/me")).json()["id"] == "bob"
    async with cluster.socket("bob") as bob, cluster.webhooks(via=2) as hooks:
        for event, agents in (("offered", None), ("ringing", ["1002"])):
            assert (await hooks.send(call_id, event, agents=agents)).status_code == 202
        await bob.wait_complete(call_id)
        assert (await hooks.send(call_id, "ended")).status_code == 202
        await bob.wait_closed(call_id)


def test_sentinel_failover_promotes_the_replica(redis_rig: RedisRig) -> None:
    """After SENTINEL FAILOVER every Sentinel names the former replica, which says master, has the data and
    takes writes."""
    old = redis_rig.primary
    with old.client() as r:
        r.set("before", "failover")
        assert r.wait(1, 2000) == 1  # the replica has it
    new = redis_rig.failover()
    assert new is not old and new is redis_rig.nodes[1]
    assert {redis_rig.primary_by_sentinel(i) for i in range(3)} == {new.port}
    assert new.role() == "master"
    with new.client() as r:
        assert r.get("before") == "failover"
        assert r.set("after", "failover")


async def test_killed_instance_leaves_rotation(cluster_factory: Callable[..., Cluster]) -> None:
    """SIGKILL of one instance: HAProxy's health check marks it DOWN within seconds, and every webhook posted
    through the balancer afterwards gets 202 from the others."""
    cluster = cluster_factory(n=3, sentinels=0, replicas=0)
    assert cluster.instances[1].kill() == -9
    seconds = await asyncio.to_thread(cluster.wait_out_of_rotation, 1, 5)
    assert seconds < 5
    before = cluster.events()
    call_ids = [new_call_id("k") for _ in range(12)]
    async with cluster.webhooks() as hooks:
        codes = [(await hooks.send(call_id, "offered")).status_code for call_id in call_ids]
    assert codes == [202] * 12
    assert delta(cluster.events(), before) == [6, None, 6]
    assert cluster.lb.state(1) == "DOWN"
