"""The lock-free latency histograms and event counts, as Prometheus reads them."""

from __future__ import annotations

from types import SimpleNamespace

from screenpop.metrics import LATENCY_BUCKETS, Buckets, Metrics


def test_buckets_count_at_or_below_each_bound_cumulatively() -> None:
    """A value equal to a bound falls in that bound's bucket; counts are cumulative up to +Inf; the sum adds up."""
    b = Buckets()
    for v in (0.001, 0.0011, 0.02, 9.0):
        b.observe(v)
    counts, total = b.export()
    by = dict(counts)
    assert [le for le, _ in counts] == [*map(str, LATENCY_BUCKETS), "+Inf"]
    assert (by["0.001"], by["0.0025"], by["0.025"], by["5.0"], by["+Inf"]) == (1, 2, 3, 3, 4)
    assert abs(total - 9.0221) < 1e-9


def test_the_exposition_keeps_the_metric_names() -> None:
    """Events, section latencies and pop latencies appear under the names dashboards already use."""
    m = Metrics()
    m.watch(list, None)  # type: ignore[arg-type]
    m.count_event("ringing")
    m.count_event("ringing")
    m.observe_pop(0.002)
    m.observe_section(SimpleNamespace(name="credit"),  # type: ignore[arg-type]
                      SimpleNamespace(latency_ms=30.0, status=SimpleNamespace(value="timeout")))
    text = m.render().decode()
    assert 'screenpop_call_events_total{event="ringing"} 2.0' in text
    assert 'screenpop_connector_latency_seconds_bucket{connector="credit",le="0.05",status="timeout"} 1.0' in text
    assert 'screenpop_connector_latency_seconds_bucket{connector="credit",le="0.025",status="timeout"} 0.0' in text
    assert "screenpop_pop_latency_seconds_count 1.0" in text
