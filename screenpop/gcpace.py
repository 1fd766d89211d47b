"""Long-lived objects out of the garbage collector's way, at a quiet moment.

An agent socket is a few hundred objects that live for hours. When many agents connect at once (a shift
starts; the benchmark's 1,000 idle sockets), those objects wait in CPython's middle generation until its
next collection, which happens after twenty young ones, whenever that is: on the bench machine it walked
1,000 fresh sockets in 45 ms, in the middle of calls. `GcSettler` runs that collection itself, once a burst
of sockets is over and no lookup is running, so they reach the oldest generation (collected rarely, see
`screenpop serve`'s thresholds) while nothing waits.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable

__all__ = ["GcSettler"]

log = logging.getLogger("screenpop.gc")


class GcSettler:
    """Call `attached()` for every new agent socket; after `burst` of them and `quiet_s` without another,
    the young and middle generations are collected as soon as `busy()` is false (at most `max_wait_s` later)."""

    def __init__(self, busy: Callable[[], bool], *, burst: int = 50, quiet_s: float = 0.5,
                 max_wait_s: float = 5.0) -> None:
        self.busy, self.burst, self.quiet_s, self.max_wait_s = busy, burst, quiet_s, max_wait_s
        self.new = 0  # sockets attached since the last settling
        self.settled = 0  # how many times it ran (for tests and logs)
        self._timer: asyncio.TimerHandle | None = None
        self._since = 0.0

    def attached(self) -> None:
        """A socket was attached: settle once this burst is over (each new socket restarts the wait)."""
        self.new += 1
        if self.new >= self.burst:
            if self._timer is not None:
                self._timer.cancel()
            self._since = time.monotonic()
            self._timer = asyncio.get_running_loop().call_later(self.quiet_s, self._settle)

    def _settle(self) -> None:
        self._timer = None
        if self.busy() and time.monotonic() - self._since < self.quiet_s + self.max_wait_s:
            self._timer = asyncio.get_running_loop().call_later(0.05, self._settle)  # wait for a quiet moment
            return
        started = time.perf_counter()
        gc.collect(1)
        self.settled += 1
        log.debug("settled %d new sockets into the oldest generation in %.1f ms", self.new,
                  (time.perf_counter() - started) * 1000)
        self.new = 0

    def close(self) -> None:
        """Cancel a pending settling."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
