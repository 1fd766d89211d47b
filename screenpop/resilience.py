"""Guards around one connector: a circuit breaker, a bulkhead, and its running statistics.

    Breaker   after `failures` consecutive failures the source is skipped for `cooldown_s` (the section
              says `unavailable` at once, nobody waits), then one trial request decides: success closes
              it, failure opens it again.
    Bulkhead  at most `max_in_flight` requests to the source at once; one more is refused at once, so a
              slow system cannot eat every socket and task of the service.
    Stats     outcomes and recent latencies, for the admin health page and the metrics.

Small and dependency-free on purpose: see docs/decisions/0003-breaker.md.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


class Breaker:
    """A consecutive-failure circuit breaker with one trial request after the cool-down."""

    def __init__(self, failures: int = 5, cooldown_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.threshold = failures
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self._trial = False
        self.opened_count = 0

    @property
    def state(self) -> BreakerState:
        if self.opened_at is None:
            return "closed"
        if self.clock() - self.opened_at >= self.cooldown_s:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        """May a request go to the source now? In half-open, only one trial at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trial:
            self._trial = True
            return True
        return False

    def retry_in_s(self) -> float:
        """Seconds until the next trial (0 when closed)."""
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.cooldown_s - (self.clock() - self.opened_at))

    def success(self) -> None:
        """The source answered: close the breaker."""
        self.failures, self.opened_at, self._trial = 0, None, False

    def failure(self) -> None:
        """The source failed or timed out: count it, open the breaker past the threshold or after a trial."""
        self.failures += 1
        if self._trial or (self.opened_at is None and self.failures >= self.threshold):
            self.opened_at = self.clock()
            self.opened_count += 1
        self._trial = False

    def release(self) -> None:
        """A request ended without a verdict (cancelled): free the trial slot."""
        self._trial = False


class Bulkhead:
    """A bound on requests in flight; acquire is immediate or refused, never a wait."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self.refused = 0

    def try_acquire(self) -> bool:
        if self.in_flight >= self.limit:
            self.refused += 1
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight -= 1


class Stats:
    """Outcome counts and the last `window` latencies of one connector."""

    def __init__(self, window: int = 1000) -> None:
        self.outcomes: Counter[str] = Counter()
        self.latencies_ms: deque[float] = deque(maxlen=window)
        self.cache: Counter[str] = Counter()

    def record(self, status: str, latency_ms: float | None) -> None:
        self.outcomes[status] += 1
        if latency_ms is not None:
            self.latencies_ms.append(latency_ms)

    def percentiles(self) -> dict[str, float | None]:
        """p50/p90/p95/p99 of the recent latencies (None when there are none)."""
        data = sorted(self.latencies_ms)
        if not data:
            return {"p50_ms": None, "p90_ms": None, "p95_ms": None, "p99_ms": None}

        def pick(q: float) -> float:
            return round(data[min(len(data) - 1, int(q * len(data)))], 1)

        return {"p50_ms": pick(0.5), "p90_ms": pick(0.9), "p95_ms": pick(0.95), "p99_ms": pick(0.99)}

    def rates(self) -> dict[str, float | None]:
        """Shares of the recorded outcomes: errors (`error`, `unavailable`) and timeouts (None before any)."""
        total = sum(self.outcomes.values())
        if not total:
            return {"error_rate": None, "timeout_rate": None}
        errors = self.outcomes["error"] + self.outcomes["unavailable"]
        return {"error_rate": round(errors / total, 3), "timeout_rate": round(self.outcomes["timeout"] / total, 3)}

    def hit_rate(self) -> float | None:
        total = sum(self.cache.values())
        return None if not total else round((self.cache["fresh"] + self.cache["stale"]) / total, 3)
