"""The one lifespan: Services.run() opens in order and closes in reverse; CTI supervision; the control channel."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator
from typing import Any, Self

import pytest

from screenpop.bus.memory import MemoryBus
from screenpop.config import parse_config
from screenpop.control import ControlChannel
from screenpop.ctilink import CtiLink, supervise_cti
from screenpop.lease import LeaseKeeper, MemoryLeaseStore
from screenpop.models import CallEvent, EventKind
from screenpop.service import Services, build_services
from screenpop.settings import Settings
from telephony.base import CtiAdapter

OPENED = ["bus.connect", "cache_backend.connect", "store.start", "admin.reload", "hub.start", "outbox.start",
          "registry.start", "cti.events"]
CLOSED = ["cti.close", "registry.close", "outbox.close", "hub.close", "admin.close", "store.close", "cache.close",
          "cache_backend.close", "bus.disconnect"]


class IdleAdapter(CtiAdapter):
    """A CTI adapter that connects to nothing: its events wait until it is closed."""

    name = "idle"

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.closed = asyncio.Event()

    @classmethod
    def from_url(cls, url: str) -> Self:  # pragma: no cover - built directly here
        return cls([])

    async def events(self) -> AsyncIterator[CallEvent]:
        self.log.append("cti.events")
        await self.closed.wait()
        return
        yield

    async def close(self) -> None:
        self.log.append("cti.close")
        self.closed.set()


def spy(obj: Any, label: str, log: list[str], *names: str, fail: str | None = None) -> None:
    """Record each call of `obj`'s methods `names` in `log` (the method `fail` raises after recording)."""
    for name in names:
        original = getattr(obj, name)

        if inspect.iscoroutinefunction(original):
            async def wrapper(*a: Any, _o: Any = original, _n: str = name, **kw: Any) -> Any:
                log.append(f"{label}.{_n}")
                if _n == fail:
                    raise RuntimeError(f"{label}.{_n} broke")
                return await _o(*a, **kw)
        else:
            def wrapper(*a: Any, _o: Any = original, _n: str = name, **kw: Any) -> Any:  # type: ignore[misc]
                log.append(f"{label}.{_n}")
                if _n == fail:
                    raise RuntimeError(f"{label}.{_n} broke")
                return _o(*a, **kw)
        setattr(obj, name, wrapper)


def spied_services(log: list[str], **fail: str) -> Services:
    """Services over the memory backends, every resource's open and close recorded in `log`."""
    services = build_services(Settings(webhook_secret="w"), config=parse_config({}))
    parts = {"bus": ("connect", "disconnect"), "cache_backend": ("connect", "close"), "cache": ("close",),
             "store": ("start", "close"), "admin": ("reload", "close"), "hub": ("start", "close"),
             "outbox": ("start", "close"), "registry": ("start", "close")}
    for label, names in parts.items():
        spy(getattr(services, label), label, log, *names, fail=fail.get(label))
    adapter = IdleAdapter(log)
    services.cti = [CtiLink("idle://pbx", lambda: adapter, LeaseKeeper(MemoryLeaseStore(), "k", "me", 9.0))]
    return services


async def test_run_opens_in_order_and_closes_in_reverse() -> None:
    """Every resource opens once in order; leaving run() closes each once, the last opened first."""
    log: list[str] = []
    services = spied_services(log)
    async with services.run() as running:
        assert running is services
        for _ in range(100):  # the CTI task starts on the next turns of the loop
            if "cti.events" in log:
                break
            await asyncio.sleep(0)
        assert log == OPENED
        log.clear()
    assert log == CLOSED


async def test_a_close_that_fails_is_logged_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    """The state store's close raising does not stop the cache and the bus from closing, nor escape run()."""
    log: list[str] = []
    services = spied_services(log, store="close")
    with caplog.at_level(logging.ERROR, logger="screenpop"):
        async with services.run():
            log.clear()
    assert log[-4:] == ["store.close", "cache.close", "cache_backend.close", "bus.disconnect"]
    assert "closing the state store failed" in caplog.text


async def test_a_failure_at_start_closes_what_was_opened() -> None:
    """The hub failing to start: what opened before it is closed in reverse, what comes after never opens."""
    log: list[str] = []
    services = spied_services(log, hub="start")
    with pytest.raises(RuntimeError, match="hub.start broke"):
        async with services.run():
            pytest.fail("run() must not be entered")  # pragma: no cover
    assert log == ["bus.connect", "cache_backend.connect", "store.start", "admin.reload", "hub.start",
                   "admin.close", "store.close", "cache.close", "cache_backend.close", "bus.disconnect"]


class FlakyAdapter(CtiAdapter):
    """Fails on its first run (a bug), then yields one event and waits."""

    name = "flaky"

    def __init__(self, event: CallEvent) -> None:
        self.event, self.runs = event, 0

    @classmethod
    def from_url(cls, url: str) -> Self:  # pragma: no cover - built directly here
        raise NotImplementedError

    async def events(self) -> AsyncIterator[CallEvent]:
        self.runs += 1
        if self.runs == 1:
            raise RuntimeError("adapter bug")
        yield self.event
        await asyncio.Event().wait()

    async def close(self) -> None:  # closed when the supervisor is cancelled
        pass


async def test_a_failing_cti_adapter_is_restarted_after_a_pause(caplog: pytest.LogCaptureFixture) -> None:
    """supervise_cti logs the adapter's failure, pauses (the injected sleep), runs it again and passes its events."""
    event = CallEvent(call_id="c1", event=EventKind.RINGING, caller="+14155550100", agents=["alice"])
    handled: list[CallEvent] = []
    pauses: list[float] = []
    got = asyncio.Event()

    async def handle(e: CallEvent) -> None:
        handled.append(e)
        got.set()

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if seconds != 2.5:  # the lease keeper's: it waits here (the test ends long before a renewal)
            await asyncio.Event().wait()

    adapter = FlakyAdapter(event)
    link = CtiLink("flaky://pbx", lambda: adapter, LeaseKeeper(MemoryLeaseStore(), "k", "me", 9.0))
    with caplog.at_level(logging.ERROR, logger="screenpop"):
        task = asyncio.create_task(supervise_cti(link, handle, pause_s=2.5, sleep=sleep))
        await asyncio.wait_for(got.wait(), 5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert handled == [event] and 2.5 in pauses and adapter.runs == 2
    assert "CTI adapter flaky failed; restarting it in 2.5 s" in caplog.text


async def test_the_control_channel_reaches_the_other_instances() -> None:
    """`connectors.changed` reloads the other instances, not the sender."""
    bus = MemoryBus()
    await bus.connect()
    a, b = ControlChannel(bus, "t.control", "a"), ControlChannel(bus, "t.control", "b")
    reloads: list[str] = []
    seen = asyncio.Event()

    async def reload_b() -> None:
        reloads.append("b")
        seen.set()

    try:
        async with b.serving(reload_b):
            await b.connectors_changed()  # its own: ignored
            await a.connectors_changed()
            await asyncio.wait_for(seen.wait(), 5)
            assert reloads == ["b"]
    finally:
        await bus.disconnect()


async def test_agent_changes_reach_the_other_instances_as_their_own_message() -> None:
    """`agents.changed` reloads the other instances' agents (not their connectors), never the sender's."""
    bus = MemoryBus()
    await bus.connect()
    a, b = ControlChannel(bus, "t.control", "a"), ControlChannel(bus, "t.control", "b")
    reloads: list[str] = []
    seen = asyncio.Event()

    async def connectors() -> None:
        reloads.append("connectors")

    async def agents() -> None:
        reloads.append("agents")
        seen.set()

    try:
        async with b.serving(connectors, agents):
            await b.agents_changed()  # its own: ignored
            await a.agents_changed()
            await asyncio.wait_for(seen.wait(), 5)
            assert reloads == ["agents"]
    finally:
        await bus.disconnect()
