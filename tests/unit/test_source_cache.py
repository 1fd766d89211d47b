"""A source behind the section cache: hits, stale-while-revalidate, stale-if-error, as sections."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from screenpop.cache import CachePolicy, SectionCache, cache_from_url
from screenpop.config import ConnectorConfig
from screenpop.models import LookupQuery, SectionStatus
from screenpop.sources import Source
from tests.unit.fakes import FakeConnector

Q = LookupQuery(phone="+14155550100", customer_id="C1")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def cache_and_clock() -> AsyncIterator[tuple[SectionCache, Clock]]:
    backend = cache_from_url("memory://")
    await backend.connect()
    clock = Clock()
    cache = SectionCache(backend, clock=clock)
    yield cache, clock
    await cache.close()
    await backend.close()


def cached_source(conn: FakeConnector, cache: SectionCache, **policy: float) -> Source:
    cfg = ConnectorConfig(name=conn.name, kind="fake", cache=CachePolicy(**policy))
    return Source(config=cfg, connector=conn, cache=cache)


async def test_second_lookup_is_a_cache_hit(cache_and_clock) -> None:
    """Within the TTL the section comes from the cache (cached, with its age) without calling the source."""
    cache, clock = cache_and_clock
    conn = FakeConnector("balance", {"C1": {"balance": 5}})
    src = cached_source(conn, cache, ttl_s=60)
    first = (await src.fetch(Q, time.monotonic() + 5)).section
    clock.now += 10
    second = (await src.fetch(Q, time.monotonic() + 5)).section
    assert first.status is SectionStatus.OK and not first.cached
    assert second.status is SectionStatus.OK and second.cached and second.age_s == 10
    assert len(conn.calls) == 1 and src.stats.hit_rate() == 0.5


async def test_stale_while_revalidate_pushes_stale_then_fresh(cache_and_clock) -> None:
    """Past the TTL, inside the stale window: 'stale' at once with its age, then the fresh value lands."""
    cache, clock = cache_and_clock
    conn = FakeConnector("balance", {"C1": {"balance": 5}})
    src = cached_source(conn, cache, ttl_s=60, stale_s=600)
    await src.fetch(Q, time.monotonic() + 5)
    conn.answers["C1"] = {"balance": 7}
    clock.now += 120
    fetched = await src.fetch(Q, time.monotonic() + 5)
    assert fetched.section.status is SectionStatus.STALE and fetched.section.data == {"balance": 5}
    assert fetched.section.age_s == 120
    assert fetched.refresh is not None
    async with asyncio.timeout(5):
        fresh = await fetched.refresh
    assert fresh.status is SectionStatus.OK and fresh.data == {"balance": 7}


async def test_stale_if_error_serves_the_last_value_when_the_source_fails(cache_and_clock) -> None:
    """The source breaks after the TTL: the last known value is shown as stale with a reason."""
    cache, clock = cache_and_clock
    conn = FakeConnector("balance", {"C1": {"balance": 5}})
    src = cached_source(conn, cache, ttl_s=60, stale_if_error_s=3600)
    await src.fetch(Q, time.monotonic() + 5)
    conn.fail = "HTTP 503"
    clock.now += 300
    section = (await src.fetch(Q, time.monotonic() + 5)).section
    assert section.status is SectionStatus.STALE and section.data == {"balance": 5}
    assert "last known value" in (section.reason or "")


async def test_stale_if_error_also_covers_a_hanging_source(cache_and_clock) -> None:
    """A source that hangs past its timeout is answered with the stale value, not 'timeout'."""
    cache, clock = cache_and_clock
    conn = FakeConnector("balance", {"C1": {"balance": 5}})
    src = cached_source(conn, cache, ttl_s=60, stale_if_error_s=3600)
    src.config.timeout_ms = 50
    await src.fetch(Q, time.monotonic() + 5)
    conn.hang = True
    clock.now += 300
    section = (await src.fetch(Q, time.monotonic() + 5)).section
    assert section.status is SectionStatus.STALE and section.data == {"balance": 5}
