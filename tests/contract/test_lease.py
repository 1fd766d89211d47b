"""Contract suite for the lease seam: the same tests run on every store (memory, Redis)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from screenpop.lease import LeaseError, LeaseStore, MemoryLeaseStore, RedisLeaseStore, lease_store_from_url
from screenpop.redisurl import parse_redis_url

TTL = 30.0  # seconds: long enough never to expire by itself during a test


class Clock:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


Store = tuple[LeaseStore, Callable[[str], Awaitable[None]]]  # the store, and how to make a lease expire


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """Each store, with a way to make a key's lease expire now (memory: the clock moves; Redis: PEXPIRE)."""
    if request.param == "memory":
        clock = Clock()
        memory = MemoryLeaseStore(clock)

        async def expire_memory(key: str) -> None:
            clock.now += TTL + 1

        yield memory, expire_memory
        return
    url = request.getfixturevalue("redis_url")
    redis = lease_store_from_url(url)
    assert isinstance(redis, RedisLeaseStore)
    admin = parse_redis_url(url).client()

    async def expire_redis(key: str) -> None:
        await admin.pexpireat(key, 1)  # an expiry in the past: Redis lets the key go at once

    try:
        yield redis, expire_redis
    finally:
        await redis.close()
        await admin.aclose()


@pytest.fixture
def key() -> str:
    """A key of its own for each test: the Redis server is shared."""
    return f"test-lease-{uuid.uuid4().hex[:12]}.cti-lease.x"


async def test_one_owner_at_a_time(store: Store, key: str) -> None:
    """The first owner takes the lease; a second is refused while it is held, and take is not renew."""
    s, _ = store
    assert await s.take(key, "a", TTL)
    assert not await s.take(key, "b", TTL)
    assert not await s.take(key, "a", TTL)
    assert await s.owner(key) == "a"


async def test_only_the_owner_renews(store: Store, key: str) -> None:
    """The owner renews; another owner's renewal is refused and changes nothing."""
    s, _ = store
    await s.take(key, "a", TTL)
    assert await s.renew(key, "a", TTL)
    assert not await s.renew(key, "b", TTL)
    assert await s.owner(key) == "a"


async def test_an_expired_lease_is_lost_and_taken_by_another(store: Store, key: str) -> None:
    """Past its TTL the lease is free: the old owner cannot renew it, a new owner takes it."""
    s, expire = store
    await s.take(key, "a", TTL)
    await expire(key)
    assert await s.owner(key) is None
    assert not await s.renew(key, "a", TTL)
    assert await s.take(key, "b", TTL)
    assert not await s.renew(key, "a", TTL)
    assert await s.owner(key) == "b"


async def test_release_frees_the_lease_at_once_and_only_the_owners(store: Store, key: str) -> None:
    """Another owner's release changes nothing; the owner's lets the next take at once."""
    s, _ = store
    await s.take(key, "a", TTL)
    assert not await s.release(key, "b")
    assert await s.owner(key) == "a"
    assert await s.release(key, "a")
    assert not await s.release(key, "a")
    assert await s.take(key, "b", TTL)


async def test_ping_answers(store: Store) -> None:
    """A reachable store answers its ping."""
    s, _ = store
    await s.ping()


async def test_an_unreachable_redis_raises_lease_error_without_the_password() -> None:
    """Nothing listening: take and ping raise LeaseError naming host:port, never the password."""
    from tests.conftest import free_port

    s = RedisLeaseStore(f"redis://:hunter2secret@127.0.0.1:{free_port()}/0", timeout_s=0.5)
    try:
        for call in (s.take("k", "a", 1.0), s.ping()):
            with pytest.raises(LeaseError) as err:
                await call
            assert "hunter2secret" not in str(err.value) and "127.0.0.1" in str(err.value)
    finally:
        await s.close()


def test_the_store_follows_the_bus_url() -> None:
    """A Redis bus URL gives the Redis store; memory:// gives the memory store; a bad Redis URL is refused."""
    assert isinstance(lease_store_from_url("memory://"), MemoryLeaseStore)
    assert isinstance(lease_store_from_url("redis://127.0.0.1:6379/0"), RedisLeaseStore)
    with pytest.raises(LeaseError, match="port"):
        lease_store_from_url("redis://:pw@127.0.0.1:notaport/0")
