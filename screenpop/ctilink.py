"""A PBX's CTI connection held by one instance of the cluster at a time: `CtiLink` and `supervise_cti`.

Every instance given the same `SCREENPOP_CTI_URLS` (or `SCREENPOP_AMI_URL`, `SCREENPOP_ESL_URL`) runs one
`supervise_cti` per URL. Each tries to take the URL's lease (screenpop.lease) every `retry_s`; the one that
gets it builds the adapter, which connects, logs in and resyncs from the PBX, and passes its events on while
renewing the lease every ttl / 3. When a renewal finds another owner, or the renewals fail until the lease's
`valid_until` (a margin before the store could let it expire), the holder stops at once: no event is handed
on after that instant, the adapter is closed (its connection with it), and the instance goes back to trying.
On shutdown (the task cancelled) the adapter is closed first, then the lease released: another instance
takes over at its next try. The module docstring of screenpop.lease states why two holders never overlap.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from screenpop.lease import LeaseKeeper
from screenpop.models import CallEvent
from telephony.base import CtiAdapter

log = logging.getLogger("screenpop")

Sleep = Callable[[float], Awaitable[None]]


@dataclass
class CtiLink:
    """One PBX URL: how to build its adapter (a fresh one for every hold: a closed adapter stays closed), its
    lease, and the adapter while this instance holds the lease."""

    name: str  # scheme://host:port, no user, no secret (pbx_name)
    make: Callable[[], CtiAdapter]
    lease: LeaseKeeper
    adapter: CtiAdapter | None = None

    @property
    def state(self) -> str:
        """`held` while this instance runs the connection, else `standby`."""
        return "held" if self.adapter is not None and self.lease.held else "standby"


async def supervise_cti(link: CtiLink, handle: Callable[[CallEvent], Awaitable[object]], *, pause_s: float = 1.0,
                        sleep: Sleep = asyncio.sleep) -> None:
    """Run the link's adapter only while this instance holds its lease, until cancelled (see the module)."""
    lease = link.lease
    while True:
        if not await lease.take():
            await sleep(lease.retry_s)
            continue
        adapter = link.adapter = link.make()
        log.info("CTI %s: lease %s taken; this instance runs the connection", link.name, lease.key)
        pump = asyncio.create_task(_pump(adapter, handle, lease, pause_s, sleep), name=f"cti-{adapter.name}")
        try:
            await _keep(lease, sleep)
            log.warning("CTI %s: lease %s lost; connection closed, back to standby", link.name, lease.key)
        finally:
            link.adapter = None
            pump.cancel()
            await adapter.close()
            await asyncio.gather(pump, return_exceptions=True)
            await lease.release()


async def _keep(lease: LeaseKeeper, sleep: Sleep) -> None:
    """Renew the lease on time; return once it is no longer held (taken by another, or not renewed in time).
    A renewal that hangs is cut off when the lease runs out, so this returns by `valid_until` at the latest."""
    failed = False
    while lease.held:
        left = lease.valid_until - lease.clock()
        await sleep(min(lease.retry_s if failed else lease.renew_due(), max(left, 0.0)))
        if not lease.held:
            return
        try:
            async with asyncio.timeout(max(lease.valid_until - lease.clock(), 0.0)):
                failed = not await lease.renew()
        except TimeoutError:
            return


async def _pump(adapter: CtiAdapter, handle: Callable[[CallEvent], Awaitable[object]], lease: LeaseKeeper,
                pause_s: float, sleep: Sleep) -> None:
    """Pass each of the adapter's events to `handle` while the lease is held. The adapter reconnects by
    itself; if it fails anyway (a bug) or its events end, it is logged and started again after `pause_s`."""
    while lease.held:
        try:
            async for event in adapter.events():
                if not lease.held:  # past valid_until: hand nothing on; the keeper closes the adapter
                    return
                await handle(event)
        except Exception:
            log.exception("CTI adapter %s failed; restarting it in %g s", adapter.name, pause_s)
        await sleep(pause_s)
