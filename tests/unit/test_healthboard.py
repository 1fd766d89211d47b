"""Connector health across instances: summaries merged (sums, rates, weighted p50, highest p95, worst
breaker), stale peers forgotten, malformed ones ignored, and the control channel carrying them."""

from __future__ import annotations

import asyncio
from typing import Any

from screenpop.bus.memory import MemoryBus
from screenpop.config import ConnectorConfig
from screenpop.control import ControlChannel
from screenpop.healthboard import HealthBoard
from screenpop.sources import Source
from tests.unit.fakes import FakeConnector


def source(name: str = "balance") -> Source:
    cfg = ConnectorConfig(name=name, kind="fake", role="section")
    return Source(config=cfg, connector=FakeConnector(name, {}))


async def _nothing(_: dict[str, Any]) -> None:
    return None


def test_merge_sums_counts_and_takes_the_worst() -> None:
    """Two instances: requests and in-flight summed, rates from the sums, p95 the higher, breaker the worst."""
    now = [0.0]
    here = source()
    for ms in (10.0, 10.0, 10.0, 10.0):
        here.stats.record("ok", ms)
    here.stats.cache.update({"fresh": 1, "miss": 1})
    board = HealthBoard(lambda: [here], _nothing, clock=lambda: now[0])
    there = source()
    there.stats.record("error", 100.0)
    there.stats.record("timeout", 100.0)
    there.stats.record("ok", 100.0)
    there.stats.record("ok", 100.0)
    there.breaker.failure()
    for _ in range(5):
        there.breaker.failure()
    there.bulkhead.try_acquire()
    board.receive("b", HealthBoard(lambda: [there], _nothing).local())
    [merged] = board.merged()
    assert merged["requests"] == 8 and merged["instances"] == 2 and merged["in_flight"] == 1
    assert merged["error_rate"] == 0.125 and merged["timeout_rate"] == 0.125
    assert merged["latency"] == {"p50_ms": 55.0, "p95_ms": 100.0}
    assert merged["breaker"] == "open" and merged["cache_hit_rate"] == 0.5
    now[0] += 60  # the other instance went quiet: only this one's numbers
    [alone] = board.merged()
    assert alone["instances"] == 1 and alone["breaker"] == "closed" and alone["requests"] == 4


def test_malformed_summaries_are_ignored() -> None:
    """A peer's message that is not a summary changes nothing."""
    board = HealthBoard(lambda: [source()], _nothing)
    board.receive("x", "nonsense")
    board.receive("y", {"balance": {"breaker": "open"}})
    [merged] = board.merged()
    assert merged["instances"] == 1 and merged["breaker"] == "closed"


async def test_health_crosses_the_control_channel() -> None:
    """An instance's published summary reaches the others' boards, never its own."""
    bus = MemoryBus()
    await bus.connect()
    a, b = ControlChannel(bus, "t.control", "a"), ControlChannel(bus, "t.control", "b")
    board_a = HealthBoard(lambda: [source()], a.health)
    board_b = HealthBoard(lambda: [source()], b.health)
    heard: list[str] = []
    arrived = asyncio.Event()

    def receive(instance: str, connectors: Any) -> None:
        heard.append(instance)
        board_b.receive(instance, connectors)
        arrived.set()

    try:
        async with b.serving(_reload, None, receive):
            await b.health(board_b.local())  # its own: ignored
            await a.health(board_a.local())
            await asyncio.wait_for(arrived.wait(), 5)
            assert heard == ["a"] and list(board_b.peers) == ["a"]
    finally:
        await bus.disconnect()


async def _reload() -> None:
    return None
