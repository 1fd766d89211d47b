"""GcSettler: a burst of new agent sockets is collected into the oldest generation at a quiet moment."""

from __future__ import annotations

import asyncio

import pytest

from screenpop import gcpace
from screenpop.gcpace import GcSettler


async def test_a_burst_is_settled_once_it_is_over_and_nothing_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """After `burst` attaches and a quiet spell, one middle-generation collection runs; fewer attaches run none."""
    collected: list[int] = []
    monkeypatch.setattr(gcpace.gc, "collect", collected.append)
    settler = GcSettler(lambda: False, burst=3, quiet_s=0.01)
    settler.attached()
    settler.attached()
    await asyncio.sleep(0.05)
    assert settler.settled == 0 and collected == []  # two sockets are not a burst
    settler.attached()
    await asyncio.sleep(0.05)
    assert settler.settled == 1 and settler.new == 0 and collected == [1]  # the middle generation, once


async def test_it_waits_while_lookups_run_but_not_forever() -> None:
    """While a lookup runs the settling waits; it runs once nothing runs, or once `max_wait_s` has passed."""
    busy = True
    settler = GcSettler(lambda: busy, burst=1, quiet_s=0.01, max_wait_s=60)
    settler.attached()
    await asyncio.sleep(0.1)
    assert settler.settled == 0
    busy = False
    await asyncio.sleep(0.1)
    assert settler.settled == 1
    stubborn = GcSettler(lambda: True, burst=1, quiet_s=0.01, max_wait_s=0.05)
    stubborn.attached()
    await asyncio.sleep(0.5)
    assert stubborn.settled == 1


async def test_each_new_socket_restarts_the_wait() -> None:
    """Sockets still arriving keep the settling back until they stop; close() cancels a pending one."""
    settler = GcSettler(lambda: False, burst=1, quiet_s=0.2)
    for _ in range(5):
        settler.attached()
        await asyncio.sleep(0)
    assert settler.settled == 0 and settler.new == 5
    await asyncio.sleep(0.4)
    assert settler.settled == 1
    settler.attached()
    settler.close()
    await asyncio.sleep(0.4)
    assert settler.settled == 1
