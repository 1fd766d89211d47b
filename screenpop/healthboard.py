"""Connector health across the cluster: each instance's numbers, shared over the control channel.

Every instance measures its own sources (screenpop/sources.py: breaker, outcomes, recent latencies, cache,
in flight). Every `every_s` it publishes a summary on the control channel; each instance keeps the latest
summary of every other instance (forgotten after `stale_s`) and merges them with its own for the admin
console and the live view:

    requests, in flight, outcomes, cache lookups   summed
    error and timeout rates, cache hit rate        from the summed counts
    p50                                            the instances' p50 weighted by their requests (approximate)
    p95                                            the highest instance's p95 (an upper bound)
    breaker                                        the worst state of any instance (open > half_open > closed)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from screenpop.sources import Source

log = logging.getLogger("screenpop.health")

_WORST = {"closed": 0, "half_open": 1, "open": 2}


def summary(source: Source) -> dict[str, Any]:
    """One source's numbers on this instance, as published."""
    stats = source.stats
    pct = stats.percentiles()
    return {"kind": source.config.kind, "role": source.config.role, "breaker": source.breaker.state,
            "retry_in_s": round(source.breaker.retry_in_s(), 1), "outcomes": dict(stats.outcomes),
            "cache": dict(stats.cache), "p50_ms": pct["p50_ms"], "p95_ms": pct["p95_ms"],
            "in_flight": source.bulkhead.in_flight, "bulkhead_refused": source.bulkhead.refused}


def merge(name: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The health of one connector from its instances' summaries (the first is this instance's)."""
    outcomes: dict[str, int] = {}
    cache: dict[str, int] = {}
    for p in parts:
        for k, n in p["outcomes"].items():
            outcomes[k] = outcomes.get(k, 0) + n
        for k, n in p["cache"].items():
            cache[k] = cache.get(k, 0) + n
    total = sum(outcomes.values())
    weighted = [(p["p50_ms"], sum(p["outcomes"].values())) for p in parts if p["p50_ms"] is not None]
    weight = sum(w for _, w in weighted)
    p95s = [p["p95_ms"] for p in parts if p["p95_ms"] is not None]
    looked = sum(cache.values())
    breaker = max((p["breaker"] for p in parts), key=lambda s: _WORST.get(s, 0))
    return {"name": name, "kind": parts[0]["kind"], "role": parts[0]["role"], "breaker": breaker,
            "retry_in_s": max(p["retry_in_s"] for p in parts),
            "latency": {"p50_ms": round(sum(v * w for v, w in weighted) / weight, 1) if weight else None,
                        "p95_ms": max(p95s) if p95s else None},
            "error_rate": round((outcomes.get("error", 0) + outcomes.get("unavailable", 0)) / total, 3)
            if total else None,
            "timeout_rate": round(outcomes.get("timeout", 0) / total, 3) if total else None,
            "requests": total,
            "cache_hit_rate": round((cache.get("fresh", 0) + cache.get("stale", 0)) / looked, 3) if looked else None,
            "in_flight": sum(p["in_flight"] for p in parts),
            "bulkhead_refused": sum(p["bulkhead_refused"] for p in parts), "instances": len(parts)}


class HealthBoard:
    """This instance's connector health merged with the other instances' latest summaries."""

    def __init__(self, sources: Callable[[], list[Source]], publish: Callable[[dict[str, Any]], Awaitable[None]],
                 *, every_s: float = 5.0, stale_s: float = 15.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.sources, self.publish, self.every_s, self.stale_s, self.clock = sources, publish, every_s, stale_s, clock
        self.peers: dict[str, tuple[float, dict[str, dict[str, Any]]]] = {}

    def local(self) -> dict[str, dict[str, Any]]:
        """This instance's summaries, by connector."""
        return {s.name: summary(s) for s in self.sources()}

    def receive(self, instance: str, connectors: Any) -> None:
        """Another instance's summaries arrived (a malformed one is ignored)."""
        if isinstance(connectors, dict) and all(isinstance(v, dict) for v in connectors.values()):
            self.peers[instance] = (self.clock(), connectors)

    def merged(self) -> list[dict[str, Any]]:
        """Every connector in use here, its numbers summed over the instances heard from lately."""
        now = self.clock()
        for instance in [i for i, (at, _) in self.peers.items() if now - at > self.stale_s]:
            del self.peers[instance]
        out = []
        for name, mine in self.local().items():
            parts = [mine]
            for _, theirs in self.peers.values():
                part = theirs.get(name)
                if part is not None and _well_formed(part):
                    parts.append(part)
            out.append(merge(name, parts))
        return out

    async def run(self) -> None:
        """Publish this instance's summaries every `every_s` until cancelled."""
        while True:
            try:
                await self.publish(self.local())
            except Exception as err:  # the bus is away: the next round tries again
                log.debug("connector health not published: %s", err)
            await asyncio.sleep(self.every_s)


def _well_formed(part: dict[str, Any]) -> bool:
    keys = ("kind", "role", "breaker", "retry_in_s", "outcomes", "cache", "p50_ms", "p95_ms", "in_flight",
            "bulkhead_refused")
    return all(k in part for k in keys) and isinstance(part["outcomes"], dict) and isinstance(part["cache"], dict)
