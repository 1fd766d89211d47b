"""What the load balancer and the orchestrator ask: `GET /healthz` (alive) and `GET /readyz` (ready for traffic).

    Probes.alive()   the process runs: 200 and the instance id, whatever the state of Redis
    Probes.ready()   200 when every check passes (the bus, the state store, ...) and the instance is not
                     draining; 503 with the reason otherwise. Each check is a cheap ping bounded by
                     `timeout_s`; the verdict is cached for `cache_s` and computed by one caller at a time,
                     so a storm of probes costs one ping per check per `cache_s`.

Draining (`Probes.draining`) starts at SIGTERM (screenpop/cli.py): /readyz answers 503 at once and the
webhooks answer 503 with a Retry-After, so the balancer takes the instance out and resends elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

log = logging.getLogger("screenpop")

Check = Callable[[], Awaitable[object]]
Clock = Callable[[], float]

DRAINING = "shutting down; send it to another instance"
RETRY_AFTER_S = 1


class Probes:
    """The two probes of one instance. `checks`: name -> a ping that raises when the part is unreachable;
    `cti`: the CTI lease state per PBX (name -> `held` | `standby`), read at each probe."""

    def __init__(self, instance: str, checks: Mapping[str, Check], *, cti: Callable[[], dict[str, str]] | None = None,
                 cache_s: float = 1.0, timeout_s: float = 1.0, clock: Clock = time.monotonic) -> None:
        self.instance = instance
        self.checks = dict(checks)
        self.cti = cti or dict
        self.cache_s, self.timeout_s, self.clock = cache_s, timeout_s, clock
        self.draining = False
        self._verdict: dict[str, str] | None = None  # check name -> "ok" or why it failed
        self._at = float("-inf")
        self._running: asyncio.Task[dict[str, str]] | None = None

    def alive(self) -> bytes:
        """The /healthz body."""
        return json.dumps({"ok": True, "instance": self.instance}).encode()

    async def ready(self) -> tuple[int, bytes]:
        """The /readyz status and body: `{"ready", "instance", "checks": {name: "ok" | why}, "cti": {...}}`,
        with `"reason"` when not ready."""
        checks = await self._checks()
        failed = [f"{name}: {why}" for name, why in checks.items() if why != "ok"]
        body: dict[str, Any] = {"ready": not failed and not self.draining, "instance": self.instance,
                                "checks": checks, "cti": self.cti()}
        if self.draining:
            body["reason"] = DRAINING
        elif failed:
            body["reason"] = "; ".join(failed)
        return (200 if body["ready"] else 503), json.dumps(body).encode()

    async def _checks(self) -> dict[str, str]:
        if self._verdict is not None and self.clock() - self._at < self.cache_s:
            return self._verdict
        if self._running is None or self._running.done():  # one caller pings; the others wait for it
            self._running = asyncio.create_task(self._run())
        verdict = await asyncio.shield(self._running)
        return verdict

    async def _run(self) -> dict[str, str]:
        names = list(self.checks)
        results = await asyncio.gather(*(self._one(self.checks[n]) for n in names))
        self._verdict, self._at = dict(zip(names, results, strict=True)), self.clock()
        return self._verdict

    async def _one(self, check: Check) -> str:
        try:
            async with asyncio.timeout(self.timeout_s):
                await check()
        except TimeoutError:
            return f"no answer within {self.timeout_s:g} s"
        except Exception as err:  # only the error's kind: a driver's message may quote a URL
            log.warning("readiness check failed: %s", type(err).__name__)
            return f"unreachable ({type(err).__name__})"
        return "ok"
