"""Two `screenpop serve` instances on a Sentinel URL (bus and cache), Redis failed over under them with SENTINEL
FAILOVER: cards keep crossing from the instance that takes the webhooks to the one that holds the agent's
socket, each card once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from tests.cluster.harness import Cluster, extension, new_call_id
from tests.cluster.redisrig import RedisNode

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

SENTINEL_URL = "redis+sentinel://{sentinels}/{master}/0"
TAKEOVER_S = 15.0  # bound of the wait for every subscription to be on the new primary


def subscriptions(node: RedisNode) -> dict[str, int]:
    """Every channel subscribed on that node, with its number of subscribers (the Sentinels' own left out)."""
    with node.client() as r:
        channels = [c for c in r.pubsub_channels() if not str(c).startswith("__sentinel__:")]
        return {str(name): int(count) for name, count in r.pubsub_numsub(*channels)} if channels else {}


def wait_moved(new: RedisNode, before: dict[str, int]) -> float:
    """Until the new primary has the subscriptions the old one had before the failover; the seconds it took."""
    start = time.monotonic()
    while (now := subscriptions(new)) != before:
        if time.monotonic() - start > TAKEOVER_S:
            raise AssertionError(f"subscriptions on the new primary {now}, expected {before}")
        time.sleep(0.05)
    return time.monotonic() - start


async def test_cards_cross_instances_across_a_sentinel_failover(cluster_factory: Callable[..., Cluster]) -> None:
    """Webhooks to instance A, alice's socket on B: a call before the failover pops; after SENTINEL FAILOVER
    every subscription moves to the new primary (before the Sentinels demote the old one) and a call then pops
    on B too; each card pops once, ends once, and no snapshot keeps one."""
    cluster = cluster_factory(n=2, env={"SCREENPOP_BUS_URL": SENTINEL_URL, "SCREENPOP_CACHE_URL": SENTINEL_URL})
    old = cluster.redis.primary
    before_id, after_id = new_call_id("before"), new_call_id("after")
    async with cluster.socket("alice", via=1) as alice, cluster.webhooks(via=0) as hooks:
        for event in ("offered", "ringing"):
            assert (await hooks.send(before_id, event, agents=[extension("alice")])).status_code == 202
        await alice.wait_complete(before_id)
        subscribed = subscriptions(old)
        assert subscribed, "the instances subscribe on the primary"

        new = await asyncio.to_thread(cluster.redis.failover)
        await asyncio.to_thread(wait_moved, new, subscribed)
        assert subscriptions(old) == {} and old.role() == "master"  # followed before the demotion

        for event in ("offered", "ringing"):
            assert (await hooks.send(after_id, event, agents=[extension("alice")])).status_code == 202
        await alice.wait_complete(after_id)
        for call_id in (before_id, after_id):
            assert (await hooks.send(call_id, "ended")).status_code == 202
            assert (await alice.wait_closed(call_id))["type"] == "call.ended"

    for call_id in (before_id, after_id):
        assert alice.count("call.ringing", call_id) == 1, f"{call_id} popped {alice.count('call.ringing', call_id)}x"
        assert alice.count("call.ended", call_id) == 1
    for via in (0, 1):
        assert await cluster.snapshot("alice", via=via) == []
    for inst in cluster.instances:
        assert inst.alive
