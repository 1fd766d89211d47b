"""Prometheus metrics of one instance, on `GET /metrics`.

Labels name connectors and message types only: never a number, a customer, an agent or a secret.
Histograms are observed on the hot path (a few hundred nanoseconds each); the gauges and counters kept by
the hub and the sources are read when Prometheus scrapes.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from screenpop.hub import AgentHub
    from screenpop.models import Section
    from screenpop.sources import Source

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BREAKER_VALUE = {"closed": 0, "half_open": 1, "open": 2}


class Metrics:
    """Every metric of one instance, in its own registry (so tests can build many apps)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # hot-path metrics: plain counts updated without locks (one event loop), exported when scraped
        self.section_latency: dict[tuple[str, str], Buckets] = {}  # (connector, status) -> latencies
        self.pop_latency = Buckets()
        self.events: dict[str, int] = {}
        self.display_latency = Histogram(
            "screenpop_display_latency_seconds", "Card sent until the agent's browser acknowledged displaying it",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self._sources: Callable[[], list[Source]] = list
        self._hub: AgentHub | None = None

    def watch(self, sources: Callable[[], list[Source]], hub: AgentHub) -> None:
        """Read these at scrape time."""
        self._sources, self._hub = sources, hub
        self.registry.register(_Live(self))

    def count_event(self, kind: str) -> None:
        """A telephony event arrived."""
        self.events[kind] = self.events.get(kind, 0) + 1

    def observe_pop(self, seconds: float) -> None:
        """A ringing event put its card on the bus after `seconds`."""
        self.pop_latency.observe(seconds)

    def observe_section(self, source: Source, section: Section) -> None:
        """A section settled."""
        if section.latency_ms is not None:
            key = (source.name, section.status.value)
            buckets = self.section_latency.get(key)
            if buckets is None:
                buckets = self.section_latency[key] = Buckets()
            buckets.observe(section.latency_ms / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class Buckets:
    """A latency histogram's counts (Prometheus `le` buckets of LATENCY_BUCKETS), kept without a lock:
    prometheus_client's Histogram takes one per observation, and these are updated on every call."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds

    def export(self) -> tuple[list[tuple[str, float]], float]:
        """Cumulative (le, count) pairs ending with +Inf, and the sum."""
        out: list[tuple[str, float]] = []
        running = 0
        for le, n in zip([*map(str, LATENCY_BUCKETS), "+Inf"], self.counts, strict=True):
            running += n
            out.append((le, running))
        return out, self.total


class _Live(Collector):
    """Breaker states, in-flight requests, cache outcomes, sockets and deliveries, read when scraped."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        breaker = GaugeMetricFamily("screenpop_breaker_state", "0 closed, 1 half-open, 2 open", labels=["connector"])
        in_flight = GaugeMetricFamily("screenpop_connector_in_flight", "Requests in flight", labels=["connector"])
        cache = CounterMetricFamily("screenpop_cache_lookups", "Section cache outcomes", labels=["connector", "result"])
        refused = CounterMetricFamily("screenpop_bulkhead_refused", "Requests refused by the bulkhead",
                                      labels=["connector"])
        for s in self.m._sources():
            breaker.add_metric([s.name], BREAKER_VALUE[s.breaker.state])
            in_flight.add_metric([s.name], s.bulkhead.in_flight)
            refused.add_metric([s.name], s.bulkhead.refused)
            for result, n in s.stats.cache.items():
                cache.add_metric([s.name, result], n)
        yield from (breaker, in_flight, cache, refused)
        events = CounterMetricFamily("screenpop_call_events", "Telephony events received", labels=["event"])
        for kind, n in self.m.events.items():
            events.add_metric([kind], n)
        latency = HistogramMetricFamily("screenpop_connector_latency_seconds", "Time for a connector to settle a "
                                        "section", labels=["connector", "status"])
        for key, buckets in self.m.section_latency.items():
            counts, total = buckets.export()
            latency.add_metric(list(key), counts, total)
        pop = HistogramMetricFamily("screenpop_pop_latency_seconds",
                                    "Telephony event received until the card is handed to the bus")
        counts, total = self.m.pop_latency.export()
        pop.add_metric([], counts, total)
        yield from (events, latency, pop)
        hub = self.m._hub
        if hub is not None:
            sockets = GaugeMetricFamily("screenpop_agent_sockets", "Agent sockets open on this instance")
            sockets.add_metric([], hub.socket_count())
            delivered = CounterMetricFamily("screenpop_messages_delivered", "Messages queued to agent sockets",
                                            labels=["type"])
            for kind, n in hub.delivered_by_type.items():
                delivered.add_metric([kind], n)
            yield sockets
            yield delivered
