"""The garbage collector's policy for a serving process, all of it in this module.

A serving process holds a few hundred thousand long-lived objects (agent sockets, connectors, caches). Left
to CPython's defaults, collections walk them again and again and stall the cards in flight. So:

1. `tune_for_serving()`, before the server starts: fewer young collections (`SERVING_THRESHOLDS`), and a
   full collection only rarely.
2. `GcSettler.start()`, once the service has started: what exists now lives as long as the process, so
   it is frozen out of every later collection (`gc.freeze`); from then on the settler does the same for
   the agent sockets that come later. A settler that was never started does nothing (tests, `demo`).
3. `GcSettler`: an agent socket is a few hundred objects that live for hours. When many agents connect at
   once (a shift starts), those objects wait in the middle generation until its next collection, whenever
   that is, in the middle of calls. The settler runs that collection itself, once a burst of sockets is
   over and no lookup is running, so they reach the oldest generation while nothing waits.

Time comes from an injected `Clock` (the running event loop by default), so tests move it by hand.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["SERVING_THRESHOLDS", "Clock", "GcSettler", "tune_for_serving"]

log = logging.getLogger("screenpop.gc")

SERVING_THRESHOLDS = (10_000, 20, 50)
"""`gc.set_threshold` while serving: a young collection every 10,000 allocations, the rest as usual."""


class Cancellable(Protocol):
    """What `Clock.call_later` returns (an `asyncio.TimerHandle` does)."""

    def cancel(self) -> None:
        """Do not run the callback; a no-op once it ran."""


class Clock(Protocol):
    """Monotonic seconds and timers; an `asyncio` event loop is one."""

    def time(self) -> float:
        """Seconds on a monotonic clock."""

    def call_later(self, delay: float, callback: Callable[[], Any], /) -> Cancellable:
        """Run `callback` once, `delay` seconds from now."""


def tune_for_serving() -> None:
    """Set the collector's thresholds for a long-running server (call once, before serving)."""
    gc.set_threshold(*SERVING_THRESHOLDS)


class GcSettler:
    """Call `attached()` for every new agent socket; once `start()`ed, after `burst` of them and `quiet_s`
    without another, the young and middle generations are collected as soon as `busy()` is false (at most
    `max_wait_s` later).

    `clock`: the timers and the time (the running event loop when None); `collect`: `gc.collect`; `active`:
    settle from now on without `start()` (which also freezes).
    """

    RETRY_S = 0.05
    """While `busy()`, how often it looks again."""

    def __init__(self, busy: Callable[[], bool], *, burst: int = 50, quiet_s: float = 0.5, max_wait_s: float = 5.0,
                 clock: Clock | None = None, collect: Callable[[int], object] = gc.collect,
                 active: bool = False) -> None:
        self.busy, self.burst, self.quiet_s, self.max_wait_s = busy, burst, quiet_s, max_wait_s
        self.collect = collect
        self.new = 0  # sockets attached since the last settling
        self.settled = 0  # how many times it ran (for tests and logs)
        self.active = active  # False until start(): the process does not manage its collections (tests, demo)
        self._clock = clock
        self._timer: Cancellable | None = None
        self._since = 0.0

    @property
    def clock(self) -> Clock:
        """The injected clock, or the running event loop."""
        return self._clock if self._clock is not None else asyncio.get_running_loop()

    def start(self) -> None:
        """Freeze what exists now out of every later collection, and settle later sockets from now on."""
        gc.freeze()
        self.active = True

    def attached(self) -> None:
        """A socket was attached: settle once this burst is over (each new socket restarts the wait)."""
        if not self.active:
            return
        self.new += 1
        if self.new >= self.burst:
            if self._timer is not None:
                self._timer.cancel()
            clock = self.clock
            self._since = clock.time()
            self._timer = clock.call_later(self.quiet_s, self._settle)

    def close(self) -> None:
        """Cancel a pending settling; settle nothing more."""
        self.active = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _settle(self) -> None:
        self._timer = None
        clock = self.clock
        if self.busy() and clock.time() - self._since < self.quiet_s + self.max_wait_s:
            self._timer = clock.call_later(self.RETRY_S, self._settle)  # wait for a quiet moment
            return
        started = time.perf_counter()
        self.collect(1)
        self.settled += 1
        log.debug("settled %d new sockets into the oldest generation in %.1f ms", self.new,
                  (time.perf_counter() - started) * 1000)
        self.new = 0
