"""uvicorn with a drain before the graceful shutdown: what `screenpop serve` and `screenpop demo` run.

On SIGTERM (an orchestrator, a balancer's drain):
    1. `drain()` at uvicorn's next tick (within 0.1 s): /readyz answers 503, webhooks answer 503 with
       Retry-After, the CTI connections close and their leases are released (`Services.drain`);
    2. for `drain_s` seconds the port stays open, so the balancer's health check sees 503 and takes the
       instance out of rotation, and what still comes is refused in a way it retries elsewhere;
    3. then uvicorn's own shutdown: it stops accepting, closes idle connections, lets requests in flight
       finish (up to `timeout_graceful_shutdown`) and closes agent sockets with 1012 (service restart: the
       console reconnects, to another instance); then the application's lifespan ends: running lookups get
       up to the lookup deadline, and every resource is closed in reverse.
SIGINT (Ctrl-C) skips the drain; a second signal forces the exit, as uvicorn does.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from types import FrameType

import uvicorn


class DrainingServer(uvicorn.Server):
    """A uvicorn Server that drains for `drain_s` seconds on SIGTERM before its graceful shutdown."""

    def __init__(self, config: uvicorn.Config, drain: Callable[[], None], drain_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(config)
        self.drain, self.drain_s, self.clock = drain, drain_s, clock
        self.draining_since: float | None = None
        self.drained = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """The first SIGTERM starts the drain (the exit follows `drain_s` later, in `on_tick`); any other
        signal, or a second one, is uvicorn's usual exit."""
        if sig == signal.SIGTERM and self.draining_since is None and not self.should_exit and self.drain_s > 0:
            # uvicorn (0.29+) re-raises the signals it captured once shut down, so the exit status says SIGTERM;
            # it keeps them in a private list: where a version has none, the exit is a plain one
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list):
                captured.append(sig)
            self.draining_since = self.clock()  # a signal handler: the drain itself runs in the loop (on_tick)
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        """uvicorn's tick (every 0.1 s): the drain starts here, and ends once `drain_s` has passed."""
        if self.draining_since is not None and not self.drained:
            self.drained = True
            self.drain()
        if self.draining_since is not None and self.clock() - self.draining_since >= self.drain_s:
            self.should_exit = True
        return await super().on_tick(counter)
