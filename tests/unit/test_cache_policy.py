"""SectionCache and the memory backend beyond the contract: policy edges, load bounds, close, counters, bounds."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator

import pytest
from pydantic import ValidationError

from screenpop.cache import CacheError, CachePolicy, Entry, SectionCache
from screenpop.cache.base import RateLimitedLog, decode_entry
from screenpop.cache.memory import MemoryCache
from screenpop.cache.policy import is_empty
from tests.contract.test_cache import WAIT, Clock, Source, eventually, joined

SWR = CachePolicy(ttl_s=10, stale_s=60, stale_if_error_s=300, negative_ttl_s=5)


@pytest.fixture
async def memory() -> AsyncIterator[MemoryCache]:
    """A connected memory backend."""
    m = MemoryCache()
    await m.connect()
    yield m
    await m.close()


@pytest.fixture
def clock() -> Clock:
    """A fresh injected clock."""
    return Clock()


@pytest.fixture
async def cache(memory: MemoryCache, clock: Clock) -> AsyncIterator[SectionCache]:
    """A SectionCache over the memory backend with the injected clock."""
    c = SectionCache(memory, clock=clock, name="unit")
    yield c
    await c.close()


@pytest.mark.parametrize("bad", [{"ttl_s": -1}, {"stale_s": float("inf")}, {"negative_ttl_s": 2 * 86400}, {"ttl": 5}])
def test_policy_refuses_bad_values_naming_the_field(bad: dict[str, float]) -> None:
    """A negative, infinite or too long duration, or an unknown field, is refused with the field's name."""
    with pytest.raises(ValidationError, match=next(iter(bad))):
        CachePolicy.model_validate(bad)


def test_policy_reads_and_keep_s() -> None:
    """Nothing is read when both TTLs are 0; an answer is kept for ttl plus the longer stale window."""
    assert not CachePolicy().reads
    assert CachePolicy(negative_ttl_s=1).reads
    assert CachePolicy(ttl_s=10, stale_s=60, stale_if_error_s=300).keep_s == 310


def test_only_none_empty_list_and_empty_dict_are_empty() -> None:
    """0, "", False and non-empty containers are answers with data, not negative answers."""
    assert [is_empty(v) for v in (None, [], {})] == [True, True, True]
    assert [is_empty(v) for v in (0, "", False, [None], {"a": None})] == [False] * 5


def test_decode_entry_refuses_what_is_not_an_entry() -> None:
    """Text that is not an entry {v, t, n} raises CacheError, whatever its shape."""
    for text in ("not json", "[]", '{"v": 1}', '{"v": 1, "t": "x", "n": false}'):
        with pytest.raises(CacheError, match="expected a cache entry"):
            decode_entry(text)


async def test_with_no_ttl_nothing_is_stored_but_loads_are_shared(cache: SectionCache, memory: MemoryCache) -> None:
    """All TTLs 0: two concurrent fetches share one load, nothing is stored, the next fetch loads again."""
    source = Source("v")
    source.gate = asyncio.Event()
    async with asyncio.timeout(WAIT):
        both = [asyncio.create_task(cache.fetch("k", CachePolicy(), source)) for _ in range(2)]
        await eventually(lambda: joined(cache, 1))
        source.gate.set()
        assert [c.value for c in await asyncio.gather(*both)] == ["v", "v"]
        await cache.fetch("k", CachePolicy(), source)
    assert source.calls == 2 and len(memory) == 0


async def test_negative_ttl_alone_caches_only_empty_answers(cache: SectionCache, memory: MemoryCache) -> None:
    """ttl_s 0 with negative_ttl_s: an answer with data is not kept, an empty one is."""
    policy = CachePolicy(negative_ttl_s=60)
    await cache.fetch("full", policy, Source({"id": 1}))
    await cache.fetch("empty", policy, Source([]))
    assert await memory.get("full") is None
    assert await memory.get("empty") == Entry([], cache.clock(), negative=True)


async def test_an_empty_answer_is_never_served_stale(cache: SectionCache, clock: Clock) -> None:
    """Past negative_ttl_s an empty answer is gone even for stale-if-error: the source's error is raised."""
    source = Source(None, RuntimeError("down"))
    await cache.fetch("k", SWR, source)
    clock.advance(6)
    with pytest.raises(RuntimeError, match="down"):
        await cache.fetch("k", SWR, source)


async def test_an_empty_refresh_drops_the_old_answer(cache: SectionCache, clock: Clock, memory: MemoryCache) -> None:
    """With negative caching off, a refresh that finds nothing removes the old answer instead of keeping it."""
    policy = CachePolicy(ttl_s=10, stale_s=60)
    source = Source({"id": 1}, None)
    await cache.fetch("k", policy, source)
    clock.advance(30)
    stale = await cache.fetch("k", policy, source)
    assert stale.refresh is not None
    async with asyncio.timeout(WAIT):
        assert (await stale.refresh).value is None
    assert await memory.get("k") is None


class SlowStore(MemoryCache):
    """A memory backend whose set() says it was called (`setting`), then waits for `gate`, as a slow Redis would."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.setting = asyncio.Event()

    async def set(self, key: str, entry: Entry, ttl_s: float) -> None:
        self.setting.set()
        await self.gate.wait()
        await super().set(key, entry, ttl_s)


async def test_a_refresh_resolves_once_the_fresh_value_is_stored(clock: Clock) -> None:
    """Cached.refresh waits for the store, so whoever awaited it finds the fresh value in the cache."""
    slow = SlowStore()
    await slow.connect()
    slow.gate.set()
    cache = SectionCache(slow, clock=clock)
    try:
        await cache.fetch("k", SWR, Source("old", "new"))
        slow.gate.clear()
        slow.setting.clear()
        clock.advance(30)
        stale = await cache.fetch("k", SWR, Source("new"))
        assert stale.refresh is not None
        async with asyncio.timeout(WAIT):
            await slow.setting.wait()  # the load has answered; its store now waits for the gate
            for _ in range(20):  # room for the refresh to finish, were it not waiting for the store
                await asyncio.sleep(0)
            assert not stale.refresh.done()
            slow.gate.set()
            assert (await stale.refresh).value == "new"
        got = await slow.get("k")
        assert got is not None and got.value == "new"
    finally:
        await cache.close()


async def test_a_failed_refresh_raises_in_its_task_and_keeps_the_stale_answer(
    cache: SectionCache, clock: Clock
) -> None:
    """A refresh that fails raises from Cached.refresh; the stale answer is still served next time."""
    source = Source("old", RuntimeError("down"))
    await cache.fetch("k", SWR, source)
    clock.advance(30)
    first = await cache.fetch("k", SWR, source)
    assert first.refresh is not None
    async with asyncio.timeout(WAIT):
        with pytest.raises(RuntimeError, match="down"):
            await first.refresh
    second = await cache.fetch("k", SWR, source)
    assert (second.value, second.state) == ("old", "stale")
    assert second.refresh is not None
    async with asyncio.timeout(WAIT):
        await asyncio.wait({second.refresh})


async def test_a_failed_refresh_nobody_awaits_is_not_reported(
    cache: SectionCache, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Dropping a stale answer whose refresh fails leaves no "exception was never retrieved" in the log."""
    source = Source("old", RuntimeError("down"))
    await cache.fetch("k", SWR, source)
    clock.advance(30)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        stale = await cache.fetch("k", SWR, source)
        assert stale.refresh is not None
        async with asyncio.timeout(WAIT):
            await asyncio.wait({stale.refresh})  # ended, its exception not retrieved by this test
        assert cache.stats.load_errors == 1
        del stale
        gc.collect()
        await asyncio.sleep(0)
    assert not [r for r in caplog.records if r.name == "asyncio"]


async def test_an_answer_that_is_not_json_is_served_but_not_cached(
    cache: SectionCache, memory: MemoryCache, caplog: pytest.LogCaptureFixture
) -> None:
    """A loader value that JSON cannot hold reaches the caller unchanged, is not stored, and is logged."""
    odd = {"when": object()}
    with caplog.at_level(logging.WARNING, logger="screenpop.cache"):
        got = await cache.fetch("k", SWR, Source(odd))
    assert got.value is odd and len(memory) == 0
    assert "not JSON" in caplog.text


async def test_a_load_is_cancelled_when_its_only_waiters_budget_is_spent(cache: SectionCache) -> None:
    """With no entry, a source slower than timeout_s raises TimeoutError, and the load is then cancelled."""
    source = Source("late")
    source.gate = asyncio.Event()
    async with asyncio.timeout(WAIT):
        with pytest.raises(TimeoutError):
            await cache.fetch("k", SWR, source, timeout_s=0.05)

        async def cancelled() -> bool:
            return source.cancelled == 1 and cache.in_flight == 0

        await eventually(cancelled)


async def test_max_load_s_bounds_a_load_without_timeout(memory: MemoryCache) -> None:
    """A fetch without timeout_s still ends: the load is cut at max_load_s and raises TimeoutError."""
    cache = SectionCache(memory, max_load_s=0.05)
    source = Source("never")
    source.gate = asyncio.Event()
    try:
        async with asyncio.timeout(WAIT):
            with pytest.raises(TimeoutError):
                await cache.fetch("k", SWR, source)
    finally:
        await cache.close()
    assert source.cancelled == 1 and cache.stats.load_errors == 1


async def test_a_later_waiter_with_a_longer_budget_keeps_the_load_alive(cache: SectionCache) -> None:
    """The shared load outlives a first waiter's short budget when a second waiter can wait longer."""
    source = Source("value")
    source.gate = asyncio.Event()
    async with asyncio.timeout(WAIT):
        short = asyncio.create_task(cache.fetch("k", SWR, source, timeout_s=0.05))
        await source.started.wait()
        long = asyncio.create_task(cache.fetch("k", SWR, source, timeout_s=WAIT))
        with pytest.raises(TimeoutError):
            await short
        source.gate.set()
        assert (await long).value == "value"
    assert source.calls == 1 and source.cancelled == 0


async def test_close_cancels_running_loads_and_their_waiters(cache: SectionCache) -> None:
    """close() cancels a running load; its waiter ends with CancelledError instead of hanging."""
    source = Source("v")
    source.gate = asyncio.Event()
    async with asyncio.timeout(WAIT):
        waiter = asyncio.create_task(cache.fetch("k", SWR, source))
        await source.started.wait()
        await cache.close()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    assert source.cancelled == 1 and cache.in_flight == 0


async def test_counters_follow_each_outcome(cache: SectionCache, clock: Clock) -> None:
    """miss, fresh hit, stale hit with refresh, then stale-if-error: each counter moves as it should."""
    source = Source("a", "b", RuntimeError("down"))
    await cache.fetch("k", SWR, source)  # miss, load 1
    await cache.fetch("k", SWR, source)  # fresh
    clock.advance(30)
    stale = await cache.fetch("k", SWR, source)  # stale, load 2 in the background
    assert stale.refresh is not None
    async with asyncio.timeout(WAIT):
        await stale.refresh
    clock.advance(100)
    assert (await cache.fetch("k", SWR, source)).error is not None  # miss, load 3 fails, served stale
    assert cache.stats.as_dict() == {
        "hits": 1,
        "stale_hits": 1,
        "misses": 2,
        "errors_served_stale": 1,
        "loads": 3,
        "load_errors": 1,
        "joins": 0,
    }


def test_rate_limited_log_says_how_many_were_left_out(caplog: pytest.LogCaptureFixture) -> None:
    """Within the interval only the first warning is logged; the next one counts those left out."""
    now = [0.0]
    log = RateLimitedLog(logging.getLogger("screenpop.cache"), interval_s=10, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="screenpop.cache"):
        for t in (0, 1, 2, 9.9, 10.5):
            now[0] = t
            log.warning("down: %s", "x")
    assert [r.getMessage() for r in caplog.records] == [
        "down: x",
        "down: x (3 similar warning(s) left out in the last 10 s)",
    ]


async def test_memory_evicts_the_least_recently_used_entry() -> None:
    """Past max_entries the entry used longest ago goes; a get counts as use."""
    m = MemoryCache(max_entries=3)
    await m.connect()
    for k in "abc":
        await m.set(k, Entry(k, 0), 60)
    await m.get("a")
    await m.set("d", Entry("d", 0), 60)
    assert [k for k in "abcd" if await m.get(k) is not None] == ["a", "c", "d"]
    assert m.evictions == 1


async def test_memory_bounds_the_bytes_and_skips_an_oversized_entry() -> None:
    """Past max_bytes the oldest entries go; one entry larger than max_bytes is not stored at all."""
    m = MemoryCache(max_bytes=100)
    await m.connect()
    await m.set("a", Entry("x" * 40, 0), 60)
    await m.set("b", Entry("y" * 40, 0), 60)
    assert await m.get("a") is None and await m.get("b") is not None and m.size_bytes <= 100
    await m.set("big", Entry("z" * 200, 0), 60)
    assert await m.get("big") is None and await m.get("b") is not None


async def test_memory_drops_an_expired_entry_when_read() -> None:
    """With an injected monotonic clock, an entry reads as None from its expiry on, and is freed."""
    now = [100.0]
    m = MemoryCache(clock=lambda: now[0])
    await m.connect()
    await m.set("k", Entry(1, 0), 5)
    now[0] = 104.9
    assert await m.get("k") is not None
    now[0] = 105.0
    assert await m.get("k") is None and len(m) == 0 and m.size_bytes == 0


async def test_waiters_of_one_load_all_get_its_value_and_the_load_is_stored(cache: SectionCache) -> None:
    """Three waiters of one load get its value once the loader returns; the load ran once and was stored."""
    gate = asyncio.Event()

    async def loader() -> dict[str, int]:
        await gate.wait()
        return {"balance": 1}

    async with asyncio.timeout(WAIT):
        waiters = [asyncio.create_task(cache.fetch("k", SWR, loader, timeout_s=5)) for _ in range(3)]
        await eventually(lambda: joined(cache, 2))
        gate.set()
        results = await asyncio.gather(*waiters)
    assert [r.value for r in results] == [{"balance": 1}] * 3 and cache.stats.loads == 1
    assert (await cache.fetch("k", SWR, loader)).state == "fresh"


async def test_an_abandoned_fetch_still_stores_the_late_answer(cache: SectionCache) -> None:
    """A caller that gives up (cancelled) leaves the load running; its late answer is stored for the next call."""
    source = Source({"balance": 2})
    source.gate = asyncio.Event()
    async with asyncio.timeout(WAIT):
        caller = asyncio.create_task(cache.fetch("k", SWR, source, timeout_s=5))
        await source.started.wait()
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        source.gate.set()
        await eventually(lambda: _none_in_flight(cache))
    hit = await cache.fetch("k", SWR, source)
    assert (hit.value, hit.state, source.calls, source.cancelled) == ({"balance": 2}, "fresh", 1, 0)


async def _none_in_flight(cache: SectionCache) -> bool:
    return cache.in_flight == 0
