"""Shared call state across instances (issue 11, items 1-3): the events of one call spread over instances,
the instance running the lookup killed mid-call. Each test runs its own cluster on one Redis."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable

import httpx
import pytest

from tests.cluster.harness import Cluster, new_call_id
from tests.cluster.instances import Instance

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]


def caller() -> str:
    """A number no other call used: its lookup cannot be answered by the shared cache."""
    return f"+1415{random.randrange(200, 1000)}{random.randrange(1000, 10000)}"  # a valid exchange


def stub_requests(cluster: Cluster) -> int:
    """Requests the back office answered before this one (it counts itself afterwards)."""
    return int(httpx.get(f"{cluster.backend.url}/_stats", timeout=5).json()["requests"])


def once_each(messages: list[dict[str, object]]) -> bool:
    """No message came twice."""
    texts = [json.dumps(m, sort_keys=True) for m in messages]
    return len(texts) == len(set(texts))


async def test_events_of_one_call_spread_over_two_instances(cluster_factory: Callable[..., Cluster]) -> None:
    """offered -> A, ringing 1001+1002 -> B, answered by 1001 -> A, ended -> B: one lookup in all; bob's card is
    withdrawn and in no snapshot; alice's is complete, answered, then ended (and in her snapshot for its
    wrap-up); each message comes once."""
    cluster = cluster_factory(n=2, sentinels=0, replicas=0)
    call_id, number = new_call_id("spread"), caller()
    before = stub_requests(cluster)
    async with cluster.socket("alice", via=1) as alice, cluster.socket("bob", via=0) as bob, \
            cluster.webhooks(via=0) as a, cluster.webhooks(via=1) as b:
        assert (await a.send(call_id, "offered", caller=number)).status_code == 202
        assert (await b.send(call_id, "ringing", caller=number, agents=["1001", "1002"])).status_code == 202
        await alice.wait_complete(call_id)
        await bob.wait_for(lambda: call_id in bob.cards or call_id in bob.closed, "bob's card")
        assert (await a.send(call_id, "answered", caller=number, agents=["1001"])).status_code == 202
        assert (await bob.wait_closed(call_id))["type"] == "call.withdrawn"
        await alice.wait_for(lambda: alice.cards[call_id]["state"] == "answered", "alice's answered card")
        for via in (0, 1):
            assert [c["call_id"] for c in await cluster.snapshot("bob", via=via)] == []
            (card,) = [c for c in await cluster.snapshot("alice", via=via) if c["call_id"] == call_id]
            assert card["state"] == "answered" and {s["status"] for s in card["sections"]} == {"ok"}
        assert (await b.send(call_id, "ended", caller=number)).status_code == 202
        assert (await alice.wait_closed(call_id))["type"] == "call.ended"
    assert stub_requests(cluster) - before - 1 == 4  # identity + 3 sections: one lookup (1: the first _stats)
    for via in (0, 1):  # alice still owes the wrap-up: the ended card follows her; bob has none
        assert [(c["call_id"], c["state"]) for c in await cluster.snapshot("alice", via=via)] == [(call_id, "ended")]
        assert await cluster.snapshot("bob", via=via) == []
    assert alice.count("call.ringing", call_id) == 1 == bob.count("call.ringing", call_id)
    assert alice.count("call.ended", call_id) == 1 == bob.count("call.withdrawn", call_id)
    assert once_each(alice.messages) and once_each(bob.messages)


async def test_a_socket_on_a_new_instance_gets_the_cards(cluster_factory: Callable[..., Cluster]) -> None:
    """A call rung through instance 0 is in the snapshot of a socket opened on an instance started after it."""
    cluster = cluster_factory(n=1, sentinels=0, replicas=0)
    call_id = new_call_id("late")
    async with cluster.webhooks(via=0) as hooks:
        assert (await hooks.send(call_id, "ringing", caller=caller(), agents=["1003"])).status_code == 202
        env = {k: v for k, v in cluster.instances[0].child.env.items() if k.startswith("SCREENPOP_")}
        late = Instance(1, cluster.workdir, env)
        cluster.instances.append(late)  # stopped with the cluster
        await asyncio.to_thread(late.start)
        assert [c["call_id"] for c in await cluster.snapshot("carol", via=1)] == [call_id]
        assert (await hooks.send(call_id, "ended")).status_code == 202
    assert await cluster.snapshot("carol", via=1) == []


async def test_the_lookup_owner_killed_mid_lookup(cluster_factory: Callable[..., Cluster]) -> None:
    """The instance running the lookup is SIGKILLed while its sections are slow: the other instance takes the
    lookup over and completes alice's card within the deadline and a sweep; an `ended` sent to it closes it."""
    cluster = cluster_factory(n=2, sentinels=0, replicas=0, deadline_ms=8000)
    call_id, number = new_call_id("kill"), caller()
    cluster.backend.set_latency(identity=0, balance=1500, orders=1500, credit=1500)
    async with cluster.socket("alice", via=1) as alice, cluster.webhooks(via=0) as a, \
            cluster.webhooks(via=1) as b:
        assert (await a.send(call_id, "ringing", caller=number, agents=["1001"])).status_code == 202
        await alice.wait_for(lambda: alice.sections(call_id).get("customer") == "ok", "the customer section")
        assert "pending" in alice.sections(call_id).values()
        await asyncio.to_thread(cluster.instances[0].kill)
        cluster.backend.set_latency(identity=0, balance=0, orders=0, credit=0)
        card = await alice.wait_complete(call_id, timeout_s=8 + 2)
        assert {s["name"]: s["status"] for s in card["sections"]} == {
            "customer": "ok", "balance": "ok", "orders": "ok", "credit": "ok"}
        assert (await b.send(call_id, "ended", caller=number)).status_code == 202
        assert (await alice.wait_closed(call_id))["type"] == "call.ended"
    assert once_each(alice.messages)
    assert await cluster.snapshot("alice", via=1) == []
    assert "taking over its lookup" in cluster.instances[1].child.log_path.read_text()
