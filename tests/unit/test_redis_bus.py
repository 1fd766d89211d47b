"""RedisBus beyond the contract: several instances, a killed or silent connection, a refused connection."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis

from screenpop.bus import BusError, Subscription
from screenpop.bus.redis import RedisBus
from tests.conftest import free_port

WAIT = 10  # seconds: the bound on every wait in this module


@pytest.fixture
def channel() -> str:
    """A channel name no parallel run shares."""
    return f"test-redis-bus-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[Redis]:
    """A plain redis-py client, outside the bus under test."""
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def with_client_name(url: str, name: str) -> str:
    """`url` with a client_name query argument, so that CLIENT LIST can find the bus's connections."""
    return f"{url}{'&' if '?' in url else '?'}client_name={name}"


async def first_message_while_publishing(sub: Subscription, admin: Redis, channel: str) -> str:
    """Publish (directly on Redis) every 50 ms until `sub` yields a message; return that message."""
    async with asyncio.timeout(WAIT), aclosing(aiter(sub)) as messages:
        received = asyncio.ensure_future(anext(messages))
        try:
            for n in range(1, 1_000_000):
                await admin.publish(channel, f"after-{n}")
                done, _ = await asyncio.wait({received}, timeout=0.05)
                if done:
                    return received.result()
        finally:
            received.cancel()
            await asyncio.wait({received})
    raise AssertionError("unreachable")


async def test_two_instances_see_each_others_messages(redis_url: str, channel: str) -> None:
    """Two RedisBus instances, as two service instances would be, each receive what the other publishes."""
    a, b = RedisBus(redis_url), RedisBus(redis_url)
    await a.connect()
    await b.connect()
    try:
        async with a.subscribe(channel) as sub_a, b.subscribe(channel) as sub_b:
            await a.publish(channel, "from a")
            await b.publish(channel, "from b")
            for sub in (sub_a, sub_b):
                async with asyncio.timeout(WAIT), aclosing(aiter(sub)) as messages:
                    assert [await anext(messages), await anext(messages)] == ["from a", "from b"]
    finally:
        await a.disconnect()
        await b.disconnect()


async def test_subscriber_survives_a_killed_connection(redis_url: str, admin: Redis, channel: str, caplog: Any) -> None:
    """When Redis kills the subscriber's connection, it resubscribes, logs it, and gets later messages."""
    name = f"screenpop-test-{uuid.uuid4().hex[:12]}"
    bus = RedisBus(with_client_name(redis_url, name))
    await bus.connect()
    try:
        with caplog.at_level(logging.WARNING, logger="screenpop.bus"):
            async with bus.subscribe(channel) as sub:
                [killed] = [c["id"] for c in await admin.client_list(_type="pubsub") if c["name"] == name]
                assert await admin.client_kill_filter(_id=killed) == 1
                assert (await first_message_while_publishing(sub, admin, channel)).startswith("after-")
                [current] = [c["id"] for c in await admin.client_list(_type="pubsub") if c["name"] == name]
                assert current != killed
    finally:
        await bus.disconnect()
    logged = [r.getMessage() for r in caplog.records if r.name == "screenpop.bus"]
    assert any("lost the subscription" in m for m in logged)
    assert any("resubscribed" in m for m in logged)


async def test_a_url_asking_for_resp3_or_decoded_replies_still_delivers(redis_url: str, channel: str) -> None:
    """A URL that asks for RESP3 and decoded replies (its options win over the bus's RESP2) still delivers."""
    bus = RedisBus(with_client_name(redis_url, "resp3") + "&protocol=3&decode_responses=true")
    await bus.connect()
    try:
        async with bus.subscribe(channel) as sub:
            await bus.publish_many(channel, ["one", "två"])
            async with asyncio.timeout(WAIT), aclosing(aiter(sub)) as messages:
                assert [await anext(messages), await anext(messages)] == ["one", "två"]
    finally:
        await bus.disconnect()


async def test_a_publish_on_a_killed_connection_fails_and_the_next_one_reconnects(
    redis_url: str, admin: Redis, channel: str
) -> None:
    """Killing the publisher's connection fails at most the publish that meets it (BusError, no hang); the
    next publish opens a new connection and is delivered."""
    name = f"screenpop-test-{uuid.uuid4().hex[:12]}"
    bus = RedisBus(with_client_name(redis_url, name))
    await bus.connect()
    try:
        async with bus.subscribe(channel) as sub:
            await bus.publish(channel, "before")
            pubsub_ids = {c["id"] for c in await admin.client_list(_type="pubsub") if c["name"] == name}
            [publisher] = [c["id"] for c in await admin.client_list() if c["name"] == name
                           and c["id"] not in pubsub_ids and c["cmd"] == "publish"]
            assert await admin.client_kill_filter(_id=publisher) == 1
            failures = 0
            for attempt in ("lost-1", "lost-2", "after"):
                try:
                    await bus.publish(channel, attempt)
                except BusError as err:
                    assert "publish" in str(err)
                    failures += 1
            assert failures <= 1
            async with asyncio.timeout(WAIT), aclosing(aiter(sub)) as messages:
                received = [await anext(messages)]
                while received[-1] != "after":
                    received.append(await anext(messages))
            assert received[0] == "before" and received[-1] == "after"
    finally:
        await bus.disconnect()


class FreezingProxy:
    """A TCP proxy to Redis whose open connections can be frozen: still open but silent, like a dead peer."""

    def __init__(self, target: str) -> None:
        u = urlsplit(target)
        self.target = (u.hostname or "127.0.0.1", u.port or 6379)
        self.frozen: set[asyncio.StreamWriter] = set()
        self.writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> FreezingProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self, port: int = 0) -> None:
        """Listen on `port` (any free port when 0); the port chosen is `self.port`."""
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close every connection, like a Redis server going down."""
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        await self.server.wait_closed()

    def freeze(self) -> None:
        """From now on, drop every byte on the connections open now (new ones work normally)."""
        self.frozen |= self.writers

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer, writer), self._pipe(up_reader, writer, writer))
        finally:
            for w in (writer, up_writer):
                self.writers.discard(w)
                w.close()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, client: Any) -> None:
        while data := await src.read(65536):
            if client not in self.frozen:
                dst.write(data)
                await dst.drain()
        dst.close()


async def test_subscriber_notices_a_silent_connection(redis_url: str, admin: Redis, channel: str) -> None:
    """A subscription whose connection goes silent (no answer to PING) reconnects and gets later messages."""
    async with FreezingProxy(redis_url) as proxy:
        bus = RedisBus(f"redis://127.0.0.1:{proxy.port}/0", health_check_interval=0.2)
        await bus.connect()
        try:
            async with bus.subscribe(channel) as sub:
                proxy.freeze()
                assert (await first_message_while_publishing(sub, admin, channel)).startswith("after-")
        finally:
            await bus.disconnect()


async def test_subscriber_backs_off_during_an_outage_then_recovers(redis_url: str, admin: Redis, channel: str) -> None:
    """While Redis is unreachable, resubscribe delays double from 0.1 s; once it is back, delivery resumes."""
    failures: list[str] = []
    three_failures = asyncio.Event()

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "attempt" in (message := record.getMessage()) and "failed" in message:
                failures.append(message)
                if len(failures) == 3:
                    three_failures.set()

    recorder = Recorder(logging.WARNING)
    logging.getLogger("screenpop.bus").addHandler(recorder)
    try:
        async with FreezingProxy(redis_url) as proxy:
            bus = RedisBus(f"redis://127.0.0.1:{proxy.port}/0")
            await bus.connect()
            try:
                async with bus.subscribe(channel) as sub:
                    await proxy.stop()
                    async with asyncio.timeout(WAIT):
                        await three_failures.wait()
                    await proxy.start(proxy.port)
                    assert (await first_message_while_publishing(sub, admin, channel)).startswith("after-")
            finally:
                await bus.disconnect()
    finally:
        logging.getLogger("screenpop.bus").removeHandler(recorder)
    assert [m.rsplit("within ", 1)[1] for m in failures[:3]] == ["0.2 s", "0.4 s", "0.8 s"]


async def test_connect_to_a_closed_port_raises_without_the_password() -> None:
    """connect() to a port nobody listens on raises BusError naming host:port and hiding the password."""
    port = free_port()
    bus = RedisBus(f"redis://:secretpw@127.0.0.1:{port}/0")
    with pytest.raises(BusError) as failure:
        await bus.connect()
    assert f"127.0.0.1:{port}" in str(failure.value)
    assert "secretpw" not in str(failure.value)
    assert "secretpw" not in repr(bus)
