"""Contract suite for the cache seam: the same tests on every backend (memory://, redis://), then the
freshness rules of SectionCache over each backend, then the Redis backend when its server is gone."""

from __future__ import annotations

import asyncio
import logging
import math
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from screenpop.cache import CacheBackend, CacheError, CachePolicy, Entry, SectionCache, cache_from_url
from screenpop.cache.memory import MemoryCache
from screenpop.cache.redis import RedisCache
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
WAIT = 10  # seconds: the bound on every wait in this suite
T0 = 1_800_000_000.0  # the injected clock's start (unix seconds)


class Clock:
    """An injectable unix clock that moves only when told."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Source:
    """A loader that counts its calls, answers from `answers` in turn (the last one repeats; an exception is
    raised), and waits for `gate` first when one is set."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls = 0
        self.cancelled = 0
        self.started = asyncio.Event()
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> Any:
        self.calls += 1
        self.started.set()
        try:
            if self.gate is not None:
                await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        answer = self.answers[min(self.calls, len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def mono() -> Clock:
    """The memory backend's injected monotonic clock (its times to live are measured on it)."""
    return Clock()


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest, mono: Clock) -> AsyncIterator[CacheBackend]:
    """A connected backend of each kind; Redis keys live under a random prefix, deleted after the test."""
    if request.param == "memory":
        b = cache_from_url("memory://", clock=mono)
        await b.connect()
        yield b
        await b.close()
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"test-cache-{uuid.uuid4().hex[:12]}:"
    b = cache_from_url(url, prefix=prefix, timeout=5.0)  # generous: the 2-core machine is shared
    await b.connect()
    try:
        yield b
    finally:
        await b.close()
        admin = Redis.from_url(url)
        try:
            keys = [k async for k in admin.scan_iter(match=prefix + "*")]
            if keys:
                await admin.delete(*keys)
        finally:
            await admin.aclose()


Age = Callable[..., Awaitable[None]]


@pytest.fixture
def age(backend: CacheBackend, mono: Clock) -> Age:
    """`await age(seconds, *keys)`: let `seconds` pass for the backend's entries, without sleeping: the memory
    backend's clock moves; on Redis, whose clock cannot be injected, each key's time to live is shortened
    by as much (or the key deleted when that reaches 0), which is what Redis does when the time passes."""

    async def memory(seconds: float, *keys: str) -> None:
        mono.advance(seconds)

    async def redis(seconds: float, *keys: str) -> None:
        admin = Redis.from_url(f"redis://{backend.address}")  # type: ignore[attr-defined]
        try:
            for k in keys:
                name = backend.prefix + k  # type: ignore[attr-defined]
                left = await admin.pttl(name)
                if left > 0 and left - seconds * 1000 >= 1:
                    await admin.pexpire(name, int(left - seconds * 1000))
                elif left > 0:
                    await admin.delete(name)
        finally:
            await admin.aclose()

    return memory if isinstance(backend, MemoryCache) else redis


@pytest.fixture
def clock() -> Clock:
    """A fresh injected clock."""
    return Clock()


@pytest.fixture
async def cache(backend: CacheBackend, clock: Clock) -> AsyncIterator[SectionCache]:
    """A SectionCache over each backend, with the injected clock; its loads are stopped after the test."""
    c = SectionCache(backend, clock=clock, name="test")
    yield c
    await c.close()


def key() -> str:
    """A key no other test uses."""
    return f"conn:fp:{uuid.uuid4().hex[:8]}"


async def eventually(check: Callable[[], Awaitable[bool]], within: float = WAIT) -> None:
    """Poll `check` every 10 ms until it is true; TimeoutError after `within` seconds."""
    async with asyncio.timeout(within):
        while True:
            if await check():
                return
            await asyncio.sleep(0.01)


async def joined(cache: SectionCache, n: int) -> bool:
    """True once `n` fetches have joined a running load."""
    return cache.stats.joins >= n


# ---- the backend interface ------------------------------------------------------------------------------


async def test_set_then_get_returns_the_entry(backend: CacheBackend) -> None:
    """An entry comes back equal: nested data, non-ASCII text, floats, the stored time and the negative flag."""
    value = {"name": "Zoë Ünal 電話 📞", "balance": -12.5, "lines": [1, None, True, {"a": []}]}
    await backend.set("k1", Entry(value, T0 + 0.25), 60)
    await backend.set("k2", Entry(None, T0, negative=True), 60)
    assert await backend.get("k1") == Entry(value, T0 + 0.25, False)
    assert await backend.get("k2") == Entry(None, T0, True)


async def test_get_of_an_unknown_key_is_none(backend: CacheBackend) -> None:
    """A key that was never set reads as None."""
    assert await backend.get(key()) is None


async def test_values_are_copies(backend: CacheBackend) -> None:
    """Mutating the value after set, or what get returned, changes nothing in the cache."""
    value = {"items": [1, 2]}
    await backend.set("k", Entry(value, T0), 60)
    value["items"].append(3)
    got = await backend.get("k")
    assert got is not None and got.value == {"items": [1, 2]}
    got.value["items"].append(4)
    again = await backend.get("k")
    assert again is not None and again.value == {"items": [1, 2]}


async def test_an_entry_expires_after_its_ttl(backend: CacheBackend, age: Age) -> None:
    """An entry set for 5 s reads as None once 5 s have passed; one set for 60 s is still there."""
    await backend.set("short", Entry("x", T0), 5)
    await backend.set("long", Entry("y", T0), 60)
    await age(4, "short", "long")
    assert (await backend.get("short")) == Entry("x", T0)
    await age(1, "short", "long")
    assert await backend.get("short") is None
    assert (await backend.get("long")) == Entry("y", T0)


async def test_set_replaces_the_value_and_its_ttl(backend: CacheBackend, age: Age) -> None:
    """A second set on a key replaces both its value and its time to live."""
    await backend.set("k", Entry("old", T0), 5)
    await backend.set("k", Entry("new", T0 + 1), 60)
    await age(10, "k")  # past the first time to live
    assert await backend.get("k") == Entry("new", T0 + 1)


async def test_delete_removes_an_entry_and_ignores_a_missing_key(backend: CacheBackend) -> None:
    """delete() makes a key read as None; deleting a key that does not exist is fine."""
    await backend.set("k", Entry(1, T0), 60)
    await backend.delete("k")
    await backend.delete("never-set")
    assert await backend.get("k") is None


@pytest.mark.parametrize("bad", [object(), {"x": math.nan}, {1j: 1}])
async def test_a_value_that_is_not_json_is_refused(backend: CacheBackend, bad: Any) -> None:
    """set() raises TypeError or ValueError for a value that is not JSON, and stores nothing."""
    with pytest.raises((TypeError, ValueError)):
        await backend.set("k", Entry(bad, T0), 60)
    assert await backend.get("k") is None


@pytest.mark.parametrize("ttl", [0, -1, math.nan])
async def test_a_ttl_that_is_not_positive_is_refused(backend: CacheBackend, ttl: float) -> None:
    """set() raises ValueError naming ttl_s for a time to live that is not more than 0."""
    with pytest.raises(ValueError, match="ttl_s"):
        await backend.set("k", Entry(1, T0), ttl)


async def test_calls_before_connect_and_after_close_raise(backend: CacheBackend) -> None:
    """get/set/delete raise CacheError on a backend never connected, and after close()."""
    url = "memory://" if isinstance(backend, MemoryCache) else f"redis://{backend.address}"  # type: ignore[attr-defined]
    fresh = cache_from_url(url)
    for b in (fresh, backend):
        if b is backend:
            await backend.close()
        with pytest.raises(CacheError, match="not connected"):
            await b.get("k")
        with pytest.raises(CacheError, match="not connected"):
            await b.set("k", Entry(1, T0), 60)
        with pytest.raises(CacheError, match="not connected"):
            await b.delete("k")


@pytest.mark.parametrize(
    ("url", "backend_type"),
    [("memory://", "MemoryCache"), ("redis://127.0.0.1:6379/0", "RedisCache"), ("rediss://:pw@example", "RedisCache")],
)
def test_cache_from_url_picks_the_backend_by_scheme(url: str, backend_type: str) -> None:
    """memory:// builds a MemoryCache; redis:// and rediss:// build a RedisCache (without connecting)."""
    assert type(cache_from_url(url)).__name__ == backend_type


def test_cache_from_url_rejects_an_unknown_scheme() -> None:
    """An unsupported scheme raises CacheError naming it."""
    with pytest.raises(CacheError, match="'memcached'"):
        cache_from_url("memcached://x")


def test_memory_url_does_not_import_the_redis_backend() -> None:
    """cache_from_url('memory://') leaves screenpop.cache.redis unimported (checked in a fresh interpreter)."""
    code = (
        "import sys; from screenpop.cache import cache_from_url; cache_from_url('memory://'); "
        "assert 'screenpop.cache.redis' not in sys.modules, 'screenpop.cache.redis was imported'"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True, cwd=ROOT, timeout=60)


# ---- SectionCache over each backend ---------------------------------------------------------------------

POLICY = CachePolicy(ttl_s=10, stale_s=60, stale_if_error_s=300, negative_ttl_s=5)


async def test_a_miss_loads_and_the_next_fetch_is_fresh(cache: SectionCache, clock: Clock) -> None:
    """The first fetch calls the loader; within ttl_s the next one is served fresh with its age."""
    k, source = key(), Source({"balance": 10})
    first = await cache.fetch(k, POLICY, source)
    assert (first.value, first.state, first.age_s) == ({"balance": 10}, "miss", 0.0)
    clock.advance(4)
    second = await cache.fetch(k, POLICY, source)
    assert (second.value, second.state, second.age_s) == ({"balance": 10}, "fresh", 4.0)
    assert source.calls == 1 and cache.stats.hits == 1 and cache.stats.misses == 1


async def test_stale_is_served_at_once_and_the_refresh_is_stored(cache: SectionCache, clock: Clock) -> None:
    """Past ttl_s the old value comes back at once, marked stale; the refresh lands, is stored, then is fresh."""
    k, source = key(), Source("old", "new")
    await cache.fetch(k, POLICY, source)
    clock.advance(30)
    source.gate = asyncio.Event()  # the refresh cannot finish before the stale answer is returned
    async with asyncio.timeout(WAIT):
        stale = await cache.fetch(k, POLICY, source)
        assert (stale.value, stale.state, stale.age_s) == ("old", "stale", 30.0)
        assert stale.refresh is not None and not stale.refresh.done()
        source.gate.set()
        fresh = await stale.refresh
    assert (fresh.value, fresh.state) == ("new", "fresh")
    after = await cache.fetch(k, POLICY, source)
    assert (after.value, after.state, after.age_s) == ("new", "fresh", 0.0)
    assert source.calls == 2 and cache.stats.stale_hits == 1


async def test_stale_if_error_serves_the_old_value_then_gives_up(cache: SectionCache, clock: Clock) -> None:
    """A failing load past the stale window serves the old value with the error, until ttl + stale_if_error."""
    k, source = key(), Source("old", RuntimeError("accounting is down"))
    await cache.fetch(k, POLICY, source)
    clock.advance(100)  # past ttl + stale_s = 70, within ttl + stale_if_error_s = 310
    served = await cache.fetch(k, POLICY, source)
    assert (served.value, served.state, served.age_s) == ("old", "stale", 100.0)
    assert isinstance(served.error, RuntimeError) and cache.stats.errors_served_stale == 1
    clock.advance(250)
    with pytest.raises(RuntimeError, match="accounting is down"):
        await cache.fetch(k, POLICY, source)


async def test_a_timeout_is_served_stale(cache: SectionCache, clock: Clock) -> None:
    """A source that hangs past the caller's timeout_s gives the old value with a TimeoutError, and is cancelled."""
    k, source = key(), Source("old")
    await cache.fetch(k, POLICY, source)
    clock.advance(100)
    source.gate = asyncio.Event()  # never set: the source hangs
    async with asyncio.timeout(WAIT):
        served = await cache.fetch(k, POLICY, source, timeout_s=0.05)
        assert (served.value, served.state) == ("old", "stale") and isinstance(served.error, TimeoutError)

        async def load_ended() -> bool:  # nobody waits any more: the load ends at that waiter's budget
            return cache.in_flight == 0

        await eventually(load_ended)
    assert source.cancelled == 1


async def test_empty_answers_are_cached_for_negative_ttl(cache: SectionCache, clock: Clock) -> None:
    """None, [] and {} ("no such customer") are served fresh within negative_ttl_s and loaded again after."""
    for empty in (None, [], {}):
        k, source = key(), Source(empty, {"id": "C1"})
        assert (await cache.fetch(k, POLICY, source)).value == empty
        clock.advance(4)
        hit = await cache.fetch(k, POLICY, source)
        assert (hit.value, hit.state, source.calls) == (empty, "fresh", 1)
        clock.advance(2)  # past negative_ttl_s = 5 (and no stale window for empty answers)
        again = await cache.fetch(k, POLICY, source)
        assert (again.value, again.state, source.calls) == ({"id": "C1"}, "miss", 2)


async def test_twenty_concurrent_fetches_share_one_load(cache: SectionCache) -> None:
    """20 concurrent fetches of one key call the loader once; each caller gets its own copy of the value."""
    k, source = key(), Source({"orders": [1, 2]})
    source.gate = asyncio.Event()
    async with asyncio.timeout(WAIT):
        fetches = [asyncio.create_task(cache.fetch(k, POLICY, source)) for _ in range(20)]
        await eventually(lambda: joined(cache, 19))  # every fetch waits on the one load
        source.gate.set()
        results = await asyncio.gather(*fetches)
    assert source.calls == 1 and cache.stats.loads == 1
    assert all(r.value == {"orders": [1, 2]} and r.state == "miss" for r in results)
    assert len({id(r.value) for r in results}) == 20
    for r in results[:2]:  # the first waiter may hold the loaded object itself: nobody else does
        r.value["orders"].append(3)
    assert results[2].value == {"orders": [1, 2]}
    assert (await cache.fetch(k, POLICY, source)).value == {"orders": [1, 2]}  # the cached text is untouched


async def test_a_cancelled_waiter_does_not_cancel_the_shared_load(cache: SectionCache) -> None:
    """Cancelling one of three waiters leaves the one load running; the other two get its value."""
    k, source = key(), Source("value")
    source.gate = asyncio.Event()
    async with asyncio.timeout(WAIT):
        waiters = [asyncio.create_task(cache.fetch(k, POLICY, source)) for _ in range(3)]
        await eventually(lambda: joined(cache, 2))
        waiters[0].cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiters[0]
        source.gate.set()
        rest = await asyncio.gather(*waiters[1:])
    assert [r.value for r in rest] == ["value", "value"]
    assert source.calls == 1 and source.cancelled == 0


# ---- Redis beyond the contract --------------------------------------------------------------------------


async def test_redis_keys_live_under_the_prefix_with_a_ttl(redis_url: str) -> None:
    """An entry is one Redis string at <prefix><key> holding its JSON, with a PX time to live."""
    prefix = f"test-cache-{uuid.uuid4().hex[:12]}:"
    backend, admin = RedisCache(redis_url, prefix=prefix, timeout=5.0), Redis.from_url(redis_url)
    await backend.connect()
    try:
        await backend.set("conn:fp:+33612345678", Entry({"a": 1}, T0), 60)
        assert await admin.get(prefix + "conn:fp:+33612345678") == b'{"v":{"a":1},"t":1800000000.0,"n":false}'
        assert 0 < await admin.pttl(prefix + "conn:fp:+33612345678") <= 60_000
    finally:
        await admin.delete(prefix + "conn:fp:+33612345678")
        await backend.close()
        await admin.aclose()


async def test_redis_data_that_is_not_an_entry_reads_as_a_miss(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A key another program wrote (not an entry) reads as None, with a warning."""
    prefix = f"test-cache-{uuid.uuid4().hex[:12]}:"
    backend, admin = RedisCache(redis_url, prefix=prefix, timeout=5.0), Redis.from_url(redis_url)
    await backend.connect()
    try:
        await admin.set(prefix + "k", b"\xff not json", px=60_000)
        with caplog.at_level(logging.WARNING, logger="screenpop.cache"):
            assert await backend.get("k") is None
        assert "ignored the value" in caplog.text
    finally:
        await admin.delete(prefix + "k")
        await backend.close()
        await admin.aclose()


# ---- Redis that is not there ----------------------------------------------------------------------------


async def test_redis_down_fetch_still_loads(caplog: pytest.LogCaptureFixture) -> None:
    """With no Redis listening, connect() does not raise and every fetch goes to the loader; one warning."""
    backend = RedisCache(f"redis://:s3cret@127.0.0.1:{free_port()}/0", timeout=1.0)
    cache = SectionCache(backend, clock=Clock())
    with caplog.at_level(logging.WARNING, logger="screenpop.cache"):
        await backend.connect()
        try:
            source = Source({"balance": 1})
            async with asyncio.timeout(WAIT):
                for _ in range(3):
                    assert (await cache.fetch("k", POLICY, source)).state == "miss"
        finally:
            await cache.close()
            await backend.close()
    assert source.calls == 3 and backend.failures >= 1
    warnings = [r.getMessage() for r in caplog.records if r.name == "screenpop.cache"]
    assert len(warnings) == 1 and "s3cret" not in warnings[0], warnings


class Proxy:
    """A TCP forwarder to Redis that can be stopped (the server 'goes away') and started again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target, self.port = target, free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


async def test_redis_lost_midway_then_back(redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Redis going away after start turns hits into loads (no error); once it is back, hits resume."""
    from urllib.parse import urlsplit

    u = urlsplit(redis_url)
    proxy = Proxy((u.hostname or "127.0.0.1", u.port or 6379))
    await proxy.start()
    prefix = f"test-cache-{uuid.uuid4().hex[:12]}:"
    mono = Clock()  # when Redis is tried again after a failure
    backend = RedisCache(f"redis://127.0.0.1:{proxy.port}{u.path}", prefix=prefix, timeout=2.0, retry_after_s=1,
                         clock=mono)
    cache = SectionCache(backend, clock=Clock())
    source = Source("v")
    try:
        async with asyncio.timeout(WAIT):
            await backend.connect()
            await cache.fetch("k", POLICY, source)
            assert (await cache.fetch("k", POLICY, source)).state == "fresh"
            await proxy.stop()
            with caplog.at_level(logging.WARNING, logger="screenpop.cache"):
                lost = await cache.fetch("k", POLICY, source)
            assert (lost.value, lost.state, source.calls) == ("v", "miss", 2)
            assert any("failed on get" in r.getMessage() for r in caplog.records)
            await proxy.start()
            assert (await cache.fetch("k", POLICY, source)).state == "miss"  # within retry_after_s: not asked
            mono.advance(1)  # after retry_after_s, Redis is used again
            assert (await cache.fetch("k", POLICY, source)).state == "fresh"
    finally:
        await cache.close()
        await backend.close()
        await proxy.stop()
        admin = Redis.from_url(redis_url)
        await admin.delete(prefix + "k")
        await admin.aclose()
