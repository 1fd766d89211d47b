"""Contract suite for the bus seam: the same tests run on every backend (memory://, redis://)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest

from screenpop.bus import Bus, BusError, Subscription, bus_from_url
from screenpop.bus.memory import MemoryBus

ROOT = Path(__file__).resolve().parents[2]
WAIT = 10  # seconds: the bound on every wait in this suite


@pytest.fixture(params=["memory", "redis"])
def bus_url(request: pytest.FixtureRequest) -> str:
    """The URL of each backend; the redis one skips (or fails in CI) without a server."""
    if request.param == "memory":
        return "memory://"
    return request.getfixturevalue("redis_url")


@pytest.fixture
async def bus(bus_url: str) -> AsyncIterator[Bus]:
    """A connected bus of each backend, disconnected after the test."""
    b = bus_from_url(bus_url)
    await b.connect()
    yield b
    await b.disconnect()


@pytest.fixture
def chan() -> Callable[..., str]:
    """Channel names under a random prefix, so that parallel runs never share a channel."""
    prefix = f"test-bus-{uuid.uuid4().hex[:12]}"
    return lambda name="c": f"{prefix}:{name}"


async def take(sub: Subscription, n: int) -> list[str]:
    """The next `n` messages of `sub` (fewer if its iteration ends), waiting at most WAIT seconds."""
    out: list[str] = []
    if n == 0:
        return out
    async with asyncio.timeout(WAIT), aclosing(aiter(sub)) as messages:
        async for message in messages:
            out.append(message)
            if len(out) == n:
                break
    return out


async def subscribers(bus: Any, channel: str) -> int:
    """How many subscriptions the backend counts on `channel` (a helper both backends offer)."""
    return await bus.subscriber_count(channel)


async def test_message_published_after_subscribe_arrives(bus: Bus, chan: Callable[..., str]) -> None:
    """A message published right after entering subscribe() is delivered."""
    async with bus.subscribe(chan()) as sub:
        await bus.publish(chan(), "hello")
        assert await take(sub, 1) == ["hello"]


async def test_order_is_preserved_for_1000_messages(bus: Bus, chan: Callable[..., str]) -> None:
    """1000 messages from one publisher all arrive, in publish order."""
    sent = [f"m{i}" for i in range(1000)]
    async with bus.subscribe(chan()) as sub:
        for message in sent:
            await bus.publish(chan(), message)
        assert await take(sub, 1000) == sent


async def test_publish_many_keeps_the_order(bus: Bus, chan: Callable[..., str]) -> None:
    """A batch of 300 messages (one round trip on Redis) arrives whole and in order, after a single one."""
    sent = [f"b{i}" for i in range(300)]
    async with bus.subscribe(chan()) as sub:
        await bus.publish(chan(), "first")
        await bus.publish_many(chan(), sent)
        assert await take(sub, 301) == ["first", *sent]


async def test_a_listener_gets_every_message_in_order(
        bus: Bus, chan: Callable[..., str], caplog: pytest.LogCaptureFixture) -> None:
    """listen(): each message goes to the callback as it arrives, in order; a failing callback stops nothing."""
    got: list[str] = []
    all_in = asyncio.Event()

    def callback(message: str) -> None:
        if message == "boom":
            raise ValueError("a bad message")
        got.append(message)
        if len(got) == 201:
            all_in.set()

    async with bus.subscribe(chan()) as sub:
        assert sub.listen(callback) is True  # both backends hand messages over; the hub relies on it
        await bus.publish(chan(), "first")
        await bus.publish(chan(), "boom")
        sent = [f"m{i}" for i in range(200)]
        await bus.publish_many(chan(), sent)
        async with asyncio.timeout(5):
            await all_in.wait()
    assert got == ["first", *sent]
    assert "listener of channel" in caplog.text


async def test_two_subscribers_both_receive(bus: Bus, chan: Callable[..., str]) -> None:
    """Every subscriber of a channel gets its own copy of each message."""
    async with bus.subscribe(chan()) as first, bus.subscribe(chan()) as second:
        await bus.publish(chan(), "one")
        await bus.publish(chan(), "two")
        assert await take(first, 2) == ["one", "two"]
        assert await take(second, 2) == ["one", "two"]


async def test_channels_are_isolated(bus: Bus, chan: Callable[..., str]) -> None:
    """A subscriber receives its own channel's messages and nothing published on another channel."""
    async with bus.subscribe(chan("a")) as a, bus.subscribe(chan("b")) as b:
        await bus.publish(chan("b"), "for-b")
        await bus.publish(chan("a"), "for-a")
        assert await take(a, 1) == ["for-a"]
        assert await take(b, 1) == ["for-b"]


async def test_unicode_and_a_100_kb_message_arrive_intact(bus: Bus, chan: Callable[..., str]) -> None:
    """Non-ASCII text (accents, CJK, emoji, NUL) and a 100 KB message arrive unchanged."""
    text = 'Zoë Ünal – 電話 📞 {"amount": "€12"}\x00end'
    big = ("0123456789abcdef" * 6400) + "☎"
    assert len(big.encode()) > 100 * 1024
    async with bus.subscribe(chan()) as sub:
        await bus.publish(chan(), text)
        await bus.publish(chan(), big)
        assert await take(sub, 2) == [text, big]


async def test_leaving_subscribe_stops_delivery_and_frees_it(bus: Bus, chan: Callable[..., str]) -> None:
    """Once the subscribe context exits, its iteration ends and the backend forgets the subscriber."""
    async with bus.subscribe(chan()) as sub:
        assert await subscribers(bus, chan()) == 1
    await bus.publish(chan(), "too late")
    assert await take(sub, 1) == []
    async with asyncio.timeout(WAIT):  # Redis forgets a closed connection's subscription asynchronously
        while True:
            if await subscribers(bus, chan()) == 0:
                break
            await asyncio.sleep(0.01)


async def test_disconnect_ends_an_active_iteration(bus: Bus, chan: Callable[..., str]) -> None:
    """disconnect() ends an iteration that is waiting for the next message."""
    received = asyncio.Event()

    async with bus.subscribe(chan()) as sub:

        async def consume() -> list[str]:
            out = []
            async for message in sub:
                out.append(message)
                received.set()
            return out

        consumer = asyncio.create_task(consume())
        await bus.publish(chan(), "before")
        async with asyncio.timeout(WAIT):
            await received.wait()
            await bus.disconnect()
            assert await consumer == ["before"]


async def test_publish_after_disconnect_raises(bus: Bus, chan: Callable[..., str]) -> None:
    """publish() on a disconnected bus raises BusError."""
    await bus.disconnect()
    with pytest.raises(BusError, match="not connected"):
        await bus.publish(chan(), "x")


async def test_publish_and_subscribe_before_connect_raise(bus_url: str, chan: Callable[..., str]) -> None:
    """publish() and subscribe() on a bus that was never connected raise BusError."""
    never_connected = bus_from_url(bus_url)
    with pytest.raises(BusError, match="not connected"):
        await never_connected.publish(chan(), "x")
    with pytest.raises(BusError, match="not connected"):
        async with never_connected.subscribe(chan()):
            pass


async def test_publish_without_subscriber_is_a_no_op(bus: Bus, chan: Callable[..., str]) -> None:
    """Publishing on a channel nobody listens to succeeds, and later subscribers never see it."""
    await bus.publish(chan(), "nobody hears this")
    async with bus.subscribe(chan()) as sub:
        await bus.publish(chan(), "heard")
        assert await take(sub, 1) == ["heard"]


async def test_memory_slow_subscriber_loses_the_oldest(chan: Callable[..., str], caplog: Any) -> None:
    """An overflowing mailbox (maxsize 3) keeps the newest messages and counts and logs the drops."""
    bus = MemoryBus(maxsize=3)
    await bus.connect()
    try:
        with caplog.at_level(logging.WARNING, logger="screenpop.bus"):
            async with bus.subscribe(chan()) as sub:
                for i in range(10):
                    await bus.publish(chan(), str(i))
                assert await take(sub, 3) == ["7", "8", "9"]
                assert sub.dropped == 7
                await bus.publish(chan(), "10")
                assert await take(sub, 1) == ["10"]
    finally:
        await bus.disconnect()
    warnings = [r for r in caplog.records if r.name == "screenpop.bus" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "too slow" in warnings[0].getMessage()


async def test_memory_mailbox_hands_what_it_holds_to_a_new_listener_first(chan: Callable[..., str]) -> None:
    """Messages queued before listen() go to the callback at once, before any later one, in order."""
    bus = MemoryBus()
    await bus.connect()
    got: list[str] = []
    async with bus.subscribe(chan()) as sub:
        for m in ("q0", "q1"):
            await bus.publish(chan(), m)
        assert got == [] and sub.listen(got.append)
        assert got == ["q0", "q1"]
        await bus.publish(chan(), "later")
        assert got == ["q0", "q1", "later"]
    await bus.disconnect()


@pytest.mark.parametrize(
    ("url", "backend"),
    [("memory://", "MemoryBus"), ("redis://127.0.0.1:6379/0", "RedisBus"), ("rediss://:pw@example:6380", "RedisBus")],
)
def test_bus_from_url_picks_the_backend_by_scheme(url: str, backend: str) -> None:
    """memory:// builds a MemoryBus; redis:// and rediss:// build a RedisBus (without connecting)."""
    assert type(bus_from_url(url)).__name__ == backend


def test_bus_from_url_rejects_an_unknown_scheme() -> None:
    """An unsupported scheme raises BusError naming that scheme."""
    with pytest.raises(BusError, match="'kafka'"):
        bus_from_url("kafka://x")


def test_memory_url_does_not_import_the_redis_backend() -> None:
    """bus_from_url('memory://') leaves screenpop.bus.redis unimported (checked in a fresh interpreter)."""
    code = (
        "import sys; from screenpop.bus import bus_from_url; bus_from_url('memory://'); "
        "assert 'screenpop.bus.redis' not in sys.modules, 'screenpop.bus.redis was imported'"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True, cwd=ROOT, timeout=60)
