"""The Redis bus and cache through a Sentinel URL against real redis-server and redis-sentinel processes: they
reach the primary, and after SENTINEL FAILOVER the publisher, the subscription and the cache move to the new
primary by themselves, long before the Sentinels demote the old one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from screenpop.bus.redis import RedisBus
from screenpop.cache.base import Entry
from screenpop.cache.redis import RedisCache
from screenpop.redisurl import parse_redis_url
from screenpop.redisurl.sentinel import FollowingPool
from tests.cluster.redisrig import RedisNode, RedisRig

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

WAIT_S = 10.0  # bound of every wait below; far below the Sentinels' demotion of the old primary


def sentinel_url(rig: RedisRig, scheme: str = "redis+sentinel") -> str:
    """The Sentinel URL of the rig's master."""
    return f"{scheme}://{','.join(f'{h}:{p}' for h, p in rig.sentinel_addrs)}/{rig.master_name}/0"


async def until(ready: object, what: str, timeout_s: float = WAIT_S) -> None:
    """Poll `ready()` (sync or async) every 50 ms until true; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = ready()  # type: ignore[operator]
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"not {what} within {timeout_s} s")


def subscribers_on(node: RedisNode, channel: str) -> int:
    """PUBSUB NUMSUB of `channel` on that node."""
    with node.client() as r:
        [(_, count)] = r.pubsub_numsub(channel)
    return int(count)


@asynccontextmanager
async def connected(bus: RedisBus) -> AsyncIterator[RedisBus]:
    """The bus, connected for the block."""
    await bus.connect()
    try:
        yield bus
    finally:
        await bus.disconnect()


async def test_publish_and_subscribe_survive_a_failover(redis_rig: RedisRig) -> None:
    """Two buses on the Sentinel URL: a message before SENTINEL FAILOVER arrives; afterwards the subscription is
    on the new primary (and gone from the old one, still a master) and the next messages arrive, each once."""
    url, channel = sentinel_url(redis_rig), "sentinel-bus-test"
    old = redis_rig.primary
    async with connected(RedisBus(url, health_check_interval=1)) as pub, \
            connected(RedisBus(url, health_check_interval=1)) as sub_bus, sub_bus.subscribe(channel) as subscription:
        sub = aiter(subscription)
        assert subscribers_on(old, channel) == 1
        await pub.publish(channel, "before")
        assert await asyncio.wait_for(anext(sub), WAIT_S) == "before"

        new = await asyncio.to_thread(redis_rig.failover)
        await until(lambda: subscribers_on(new, channel) == 1, "resubscribed on the new primary")
        assert subscribers_on(old, channel) == 0 and old.role() == "master"  # not demoted yet: followed anyway

        got: list[str] = []
        sent = [f"after-{i}" for i in range(5)]
        for message in sent:
            await pub.publish(channel, message)
        while len(got) < len(sent):
            got.append(await asyncio.wait_for(anext(sub), WAIT_S))
        assert got == sent
        assert await pub.subscriber_count(channel) == 1  # PUBSUB NUMSUB answered by the new primary


async def test_the_client_follows_the_switch_not_only_the_demotion(redis_rig: RedisRig) -> None:
    """A client of the Sentinel URL with an idle connection and a PubSub on the old primary: after SENTINEL
    FAILOVER its pool sees the switch and every connection it holds is to the new primary."""
    client = parse_redis_url(sentinel_url(redis_rig)).client()
    try:
        await client.set("sentinel-follow-test", "1")
        pubsub = client.pubsub()
        await pubsub.subscribe("sentinel-follow-channel")
        pool = client.connection_pool
        assert isinstance(pool, FollowingPool)
        assert await pool.check_primary() is False and await pool.check_primary() is False  # no move: no close
        new = await asyncio.to_thread(redis_rig.failover)
        await until(lambda: pool.switches >= 1, "a switch seen")
        assert await pool.check_primary() is False and pool.switches == 1  # one move, seen once
        assert pool.master_address == ("127.0.0.1", new.port)
        assert await client.get("sentinel-follow-test") == b"1"  # the replica had it
        assert {(c.host, c.port) for c in pool._available_connections if c.is_connected} <= {("127.0.0.1", new.port)}
        await pubsub.aclose()  # type: ignore[no-untyped-call]
    finally:
        await client.aclose()


async def test_the_clients_of_one_process_move_together(redis_rig: RedisRig) -> None:
    """Two clients of the same Sentinel URL (say the bus and the call store): the first one to see the switch
    closes the other's connections too, so neither keeps writing on the old primary while the other has moved."""
    first, second = (parse_redis_url(sentinel_url(redis_rig)).client() for _ in range(2))
    try:
        for c in (first, second):
            await c.set("sentinel-together", "1")
        pools = [first.connection_pool, second.connection_pool]
        assert all(isinstance(p, FollowingPool) for p in pools)
        a, b = pools
        assert isinstance(a, FollowingPool) and isinstance(b, FollowingPool)
        assert b._follower is not None
        b._follower.cancel()  # b's own follower stops (the task stays set, so none restarts): only a's sees it
        new = await asyncio.to_thread(redis_rig.failover)
        await until(lambda: a.switches >= 1, "the first client sees the switch")
        assert b.switches == 1 and b._primary == ("127.0.0.1", new.port)
        assert await second.get("sentinel-together") == b"1"  # reconnected, to the new primary
        assert {(c.host, c.port) for c in b._available_connections if c.is_connected} <= {("127.0.0.1", new.port)}
    finally:
        await first.aclose()
        await second.aclose()


async def test_the_cache_works_across_a_failover(redis_rig: RedisRig) -> None:
    """The Redis cache on the Sentinel URL: an entry set before the failover is read back after it (from the new
    primary), and a new entry can be written there."""
    cache = RedisCache(sentinel_url(redis_rig), prefix="sentinel-cache-test:", timeout=1.0, retry_after_s=0.1)
    await cache.connect()
    try:
        entry = Entry(value={"balance": 12}, stored_at=1.0)
        await cache.set("k1", entry, 600)
        with redis_rig.primary.client() as r:
            assert r.wait(1, 2000) == 1
        new = await asyncio.to_thread(redis_rig.failover)

        async def read_back() -> bool:
            got = await cache.get("k1")
            return got is not None and got.value == {"balance": 12}

        await until(read_back, "the entry read back after the failover")
        async def written() -> bool:
            await cache.set("k2", entry, 600)
            with new.client() as r:
                return bool(r.exists("sentinel-cache-test:k2"))

        await until(written, "k2 written on the new primary")
    finally:
        await cache.close()


async def test_closing_right_after_connecting_never_hangs(redis_rig: RedisRig) -> None:
    """A bus on the Sentinel URL connected and disconnected 100 times in a row (as `screenpop serve` checks the
    bus before serving): each disconnect stops the follower and returns, at any point of its work."""
    url = sentinel_url(redis_rig)
    for i in range(100):
        bus = RedisBus(url)
        async with asyncio.timeout(WAIT_S):
            await bus.connect()
            await asyncio.sleep(0.002 * (i % 5))
            await bus.disconnect()
    assert not [t for t in asyncio.all_tasks() if "follow" in t.get_name()]
