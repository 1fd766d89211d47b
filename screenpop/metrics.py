"""Prometheus metrics of one instance, on `GET /metrics`.

Labels name connectors and message types only: never a number, a customer, an agent or a secret.
Histograms are observed on the hot path (a few hundred nanoseconds each); the gauges and counters kept by
the hub and the sources are read when Prometheus scrapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
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
        self.section_latency = Histogram(
            "screenpop_connector_latency_seconds", "Time for a connector to settle a section",
            ["connector", "status"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.pop_latency = Histogram(
            "screenpop_pop_latency_seconds", "Telephony event received until the card is handed to the bus",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.display_latency = Histogram(
            "screenpop_display_latency_seconds", "Card sent until the agent's browser acknowledged displaying it",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.events = Counter("screenpop_call_events_total", "Telephony events received", ["event"],
                              registry=self.registry)
        self._latency_children: dict[tuple[str, str], Any] = {}
        self._event_children: dict[str, Any] = {}
        self._sources: Callable[[], list[Source]] = list
        self._hub: AgentHub | None = None

    def watch(self, sources: Callable[[], list[Source]], hub: AgentHub) -> None:
        """Read these at scrape time."""
        self._sources, self._hub = sources, hub
        self.registry.register(_Live(self))

    def count_event(self, kind: str) -> None:
        """A telephony event arrived."""
        child = self._event_children.get(kind)
        if child is None:
            child = self._event_children[kind] = self.events.labels(kind)
        child.inc()

    def observe_section(self, source: Source, section: Section) -> None:
        """A section settled."""
        if section.latency_ms is not None:
            key = (source.name, section.status.value)
            child = self._latency_children.get(key)
            if child is None:  # labels() parses and locks on every call: keep each child once
                child = self._latency_children[key] = self.section_latency.labels(*key)
            child.observe(section.latency_ms / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Live(Collector):
    """Breaker states, in-flight requests, cache outcomes, sockets and deliveries, read when scraped."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
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
