"""The GC policy: a burst of new agent sockets is collected into the oldest generation at a quiet moment."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from screenpop.gcpace import SERVING_THRESHOLDS, GcSettler, tune_for_serving


class Timer:
    """A pending callback of ManualClock."""

    def __init__(self, when: float, callback: Callable[[], Any]) -> None:
        self.when, self.callback, self.cancelled = when, callback, False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """An injected clock whose time moves only in `advance`, running the timers that fall due meanwhile."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[Timer] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], Any], /) -> Timer:
        timer = Timer(self.now + delay, callback)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while due := sorted((t for t in self.timers if not t.cancelled and t.when <= end), key=lambda t: t.when):
            timer = due[0]
            self.timers.remove(timer)
            self.now = timer.when
            timer.callback()
        self.now = end


@pytest.fixture
def clock() -> ManualClock:
    """A fresh manual clock."""
    return ManualClock()


def test_a_burst_is_settled_once_it_is_over_and_nothing_runs(clock: ManualClock) -> None:
    """After `burst` attaches and a quiet spell, one middle-generation collection runs; fewer attaches run none."""
    collected: list[int] = []
    settler = GcSettler(lambda: False, burst=3, quiet_s=0.5, clock=clock, collect=collected.append, active=True)
    settler.attached()
    settler.attached()
    clock.advance(10)
    assert settler.settled == 0 and collected == []  # two sockets are not a burst
    settler.attached()
    clock.advance(0.49)
    assert collected == []  # the quiet spell is not over
    clock.advance(0.01)
    assert settler.settled == 1 and settler.new == 0 and collected == [1]  # the middle generation, once


def test_it_waits_while_lookups_run_but_not_forever(clock: ManualClock) -> None:
    """While a lookup runs the settling waits; it runs once nothing runs, or once `max_wait_s` has passed."""
    busy = True
    settler = GcSettler(lambda: busy, burst=1, quiet_s=0.5, max_wait_s=60, clock=clock, collect=lambda _: None,
                        active=True)
    settler.attached()
    clock.advance(30)
    assert settler.settled == 0
    busy = False
    clock.advance(GcSettler.RETRY_S)
    assert settler.settled == 1
    stubborn = GcSettler(lambda: True, burst=1, quiet_s=0.5, max_wait_s=5, clock=clock, collect=lambda _: None,
                         active=True)
    stubborn.attached()
    clock.advance(5.4)
    assert stubborn.settled == 0
    clock.advance(0.2)
    assert stubborn.settled == 1


def test_each_new_socket_restarts_the_wait(clock: ManualClock) -> None:
    """Sockets still arriving keep the settling back until they stop; close() cancels a pending one."""
    settler = GcSettler(lambda: False, burst=1, quiet_s=0.5, clock=clock, collect=lambda _: None, active=True)
    for _ in range(5):
        settler.attached()
        clock.advance(0.4)
    assert settler.settled == 0 and settler.new == 5
    clock.advance(0.1)
    assert settler.settled == 1
    settler.attached()
    settler.close()
    clock.advance(10)
    assert settler.settled == 1


@pytest.fixture
def gc_state() -> Iterator[None]:
    """Puts the interpreter's thresholds back and unfreezes after the test."""
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


@pytest.mark.usefixtures("gc_state")
def test_serving_settings_set_the_thresholds_and_freeze_what_exists(clock: ManualClock) -> None:
    """tune_for_serving sets the serving thresholds; a settler freezes the objects alive when it starts."""
    tune_for_serving()
    assert gc.get_threshold() == SERVING_THRESHOLDS
    settler = GcSettler(lambda: False, burst=1, clock=clock, collect=lambda _: None)
    settler.attached()
    clock.advance(10)
    assert settler.settled == 0 and gc.get_freeze_count() == 0  # not started: it manages nothing
    settler.start()
    assert gc.get_freeze_count() > 0
