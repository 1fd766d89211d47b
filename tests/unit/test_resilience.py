"""The guards around a source: breaker, bulkhead, retries, and how they show on the section."""

from __future__ import annotations

import asyncio
import time

from screenpop.config import BreakerConfig, ConnectorConfig
from screenpop.models import LookupQuery, SectionStatus
from screenpop.resilience import Breaker, Bulkhead, Stats
from screenpop.sources import Source
from tests.unit.fakes import FakeConnector

Q = LookupQuery(phone="+14155550100", customer_id="C1")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_consecutive_failures_and_tries_once_after_cooldown() -> None:
    """N failures open it; during the cool-down nothing passes; then exactly one trial decides."""
    clock = Clock()
    b = Breaker(failures=3, cooldown_s=10, clock=clock)
    for _ in range(2):
        assert b.allow()
        b.failure()
    b.success()  # a success resets the count
    for _ in range(3):
        assert b.allow()
        b.failure()
    assert b.state == "open" and not b.allow()
    clock.now = 10
    assert b.state == "half_open"
    assert b.allow() and not b.allow()  # one trial at a time
    b.failure()
    assert b.state == "open" and b.opened_count == 2
    clock.now = 20
    assert b.allow()
    b.success()
    assert b.state == "closed" and b.allow()


def test_bulkhead_refuses_past_its_limit() -> None:
    """Two in flight with a limit of two: the third is refused at once and counted."""
    bh = Bulkhead(2)
    assert bh.try_acquire() and bh.try_acquire() and not bh.try_acquire()
    bh.release()
    assert bh.try_acquire() and bh.refused == 1


def test_stats_percentiles_and_hit_rate() -> None:
    """Percentiles come from the recent latencies; hit rate from cache outcomes."""
    s = Stats()
    for ms in range(1, 101):
        s.record("ok", float(ms))
    assert s.percentiles() == {"p50_ms": 51.0, "p90_ms": 91.0, "p95_ms": 96.0, "p99_ms": 100.0}
    s.cache.update({"fresh": 3, "miss": 1})
    assert s.hit_rate() == 0.75


def source(conn: FakeConnector, **cfg) -> Source:
    return Source(config=ConnectorConfig(name=conn.name, kind="fake", **cfg), connector=conn)


async def test_open_breaker_makes_the_section_unavailable_without_calling() -> None:
    """After the threshold, the section is 'unavailable' at once and the connector is not called."""
    conn = FakeConnector("credit", {}, fail="HTTP 500")
    src = source(conn, breaker=BreakerConfig(failures=2, cooldown_s=60))
    deadline = time.monotonic() + 5
    for _ in range(2):
        assert (await src.fetch(Q, deadline)).section.status is SectionStatus.ERROR
    third = (await src.fetch(Q, deadline)).section
    assert third.status is SectionStatus.UNAVAILABLE and "next try in" in (third.reason or "")
    assert len(conn.calls) == 2
    assert src.stats.outcomes == {"error": 2, "unavailable": 1}


async def test_timeouts_count_as_failures() -> None:
    """A source that hangs times out, and enough timeouts open the breaker."""
    src = source(FakeConnector("credit", {}, hang=True), timeout_ms=20, breaker=BreakerConfig(failures=1))
    first = (await src.fetch(Q, time.monotonic() + 5)).section
    assert first.status is SectionStatus.TIMEOUT
    assert src.breaker.state == "open"


async def test_bulkhead_full_means_unavailable_at_once() -> None:
    """With one request in flight and a limit of one, the next lookup is refused without waiting."""
    gate = asyncio.Event()
    conn = FakeConnector("credit", {"C1": {"x": 1}}, gate=gate)
    src = source(conn, max_in_flight=1)
    first = asyncio.create_task(src.fetch(Q, time.monotonic() + 5))
    await asyncio.sleep(0)
    second = (await src.fetch(Q, time.monotonic() + 5)).section
    assert second.status is SectionStatus.UNAVAILABLE and "too many requests" in (second.reason or "")
    gate.set()
    assert (await first).section.status is SectionStatus.OK


class Flaky(FakeConnector):
    """Fails the first `n` calls, then answers."""

    def __init__(self, n: int) -> None:
        super().__init__("flaky", {"C1": {"ok": True}})
        self.n = n

    async def fetch(self, query):
        """Fail n times, then answer from the table."""
        self.calls.append(query)
        if len(self.calls) <= self.n:
            from connectors.base import ConnectorError

            raise ConnectorError("HTTP 503")
        return self.answers.get(query.customer_id)


async def test_retries_happen_only_when_configured() -> None:
    """One retry turns a single 503 into ok; with no retries the 503 is the section's error."""
    retried = source(Flaky(1), retries=1)
    assert (await retried.fetch(Q, time.monotonic() + 5)).section.status is SectionStatus.OK
    plain = source(Flaky(1))
    assert (await plain.fetch(Q, time.monotonic() + 5)).section.status is SectionStatus.ERROR


async def test_no_retry_past_the_deadline() -> None:
    """A retry that would not fit in the remaining deadline is not attempted."""
    conn = Flaky(5)
    src = source(conn, retries=3)
    section = (await src.fetch(Q, time.monotonic() + 0.01)).section
    assert section.status in (SectionStatus.ERROR, SectionStatus.TIMEOUT)
    assert len(conn.calls) <= 1
