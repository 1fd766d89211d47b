"""The Redis bus (`redis://`, `rediss://`): instances of screenpop share messages through Redis PUB/SUB.

`publish` sends PUBLISH on the client's connection pool. Each subscription owns a dedicated connection
(a redis-py `PubSub`) and a reader task that copies the channel's messages into a bounded mailbox, the
same `QueueSubscription` as the memory backend (`maxsize` messages, the oldest dropped when full).

Failures:
- `connect()` PINGs the server; failure raises BusError naming host:port, never the password.
- `publish` is never retried (delivery is at most once); any failure raises BusError.
- A subscription notices a lost connection at once when the socket closes, and within
  2 x `health_check_interval` when it goes silent (after each quiet interval it PINGs; a second quiet
  interval with no answer means dead). It then reconnects with exponential backoff (0.1 s doubling up
  to 5 s, with jitter), resubscribes and logs warnings on `screenpop.bus`. Messages published while it
  was disconnected are LOST: Redis PUB/SUB keeps nothing for absent subscribers.
Iteration ends when the subscribe context exits or the bus disconnects.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from redis.asyncio import Redis, RedisError
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from screenpop.bus.base import Bus, BusError
from screenpop.bus.memory import DEFAULT_MAXSIZE, QueueSubscription

__all__ = ["BACKOFF_FIRST", "BACKOFF_MAX", "RedisBus"]

logger = logging.getLogger("screenpop.bus")

BACKOFF_FIRST = 0.1  # seconds before the first resubscribe attempt; doubles on each failure
BACKOFF_MAX = 5.0
_PING_PAYLOAD = "screenpop-bus-keepalive"
_FAILURES = (RedisError, OSError)  # OSError includes TimeoutError (asyncio.timeout)


class RedisBus(Bus):
    """Publish/subscribe through a Redis server; `url` is `redis://[:password@]host[:port][/db]`.

    `maxsize`: each subscription's mailbox; `health_check_interval`: quiet seconds before a subscription
    PINGs; `timeout`: seconds for connecting, for a command and for a SUBSCRIBE to be confirmed.
    """

    def __init__(
        self, url: str, *, maxsize: int = DEFAULT_MAXSIZE, health_check_interval: float = 5.0, timeout: float = 5.0
    ) -> None:
        try:
            parts = urlsplit(url)
            self.address = f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
        except ValueError as exc:
            raise BusError(f"invalid Redis URL: {exc}") from None
        if parts.scheme not in ("redis", "rediss"):
            raise BusError(f"RedisBus needs a redis:// or rediss:// URL, got scheme {parts.scheme!r}")
        self._url, self._password = url, parts.password
        self.maxsize, self.health_check_interval, self.timeout = maxsize, health_check_interval, timeout
        self._client: Redis | None = None
        self._subscriptions: set[_RedisSubscription] = set()

    def __repr__(self) -> str:
        return f"<RedisBus {self.address} {'connected' if self._client else 'not connected'}>"

    async def connect(self) -> None:
        """Create the client and PING the server; raises BusError naming host:port if it cannot."""
        if self._client is not None:
            return
        # We own retries: the resubscribe loop below, and none for PUBLISH (delivery is at most once).
        no_retry = Retry(NoBackoff(), 0, supported_errors=())
        try:
            client = Redis.from_url(
                self._url, socket_connect_timeout=self.timeout, socket_timeout=self.timeout, retry=no_retry
            )
        except ValueError as exc:
            raise self._error("connect", exc) from None
        try:
            await client.ping()
        except _FAILURES as exc:
            await client.aclose()
            raise self._error("connect", exc) from None
        self._client = client

    async def disconnect(self) -> None:
        """End every subscription, then close the client. Idempotent, never raises."""
        client, self._client = self._client, None
        subscriptions, self._subscriptions = self._subscriptions, set()
        for sub in subscriptions:
            await sub.aclose()
        if client is not None:
            try:
                await client.aclose()
            except Exception:
                logger.warning("bus: error while closing the Redis client for %s", self.address, exc_info=True)

    async def publish(self, channel: str, message: str) -> None:
        """PUBLISH `message` on `channel`; raises BusError if not connected or if Redis fails."""
        client = self._require_client("publish")
        try:
            await client.publish(channel, message)
        except _FAILURES as exc:
            raise self._error("publish", exc) from None

    async def publish_many(self, channel: str, messages: list[str]) -> None:
        """All of them in one pipeline (one round trip, order kept); raises BusError if Redis fails."""
        if len(messages) == 1:  # the usual case: a plain PUBLISH costs less than a pipeline
            await self.publish(channel, messages[0])
            return
        client = self._require_client("publish")
        try:
            async with client.pipeline(transaction=False) as pipe:
                for message in messages:
                    pipe.publish(channel, message)
                await pipe.execute()
        except _FAILURES as exc:
            raise self._error("publish", exc) from None

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[QueueSubscription]:
        """Subscribe on a dedicated connection; SUBSCRIBE is confirmed before the context is entered."""
        client = self._require_client("subscribe")
        try:
            pubsub = await self._open_pubsub(client, channel)
        except _FAILURES as exc:
            raise self._error(f"subscribe to {channel!r}", exc) from None
        if self._client is not client:  # disconnect() ran while SUBSCRIBE was in flight
            await _close_quietly(pubsub)
            raise BusError(f"cannot subscribe to {channel!r}: the Redis bus for {self.address} disconnected")
        sub = _RedisSubscription(self, client, channel, pubsub)
        self._subscriptions.add(sub)
        try:
            yield sub
        finally:
            self._subscriptions.discard(sub)
            await sub.aclose()

    async def subscriber_count(self, channel: str) -> int:
        """How many subscriptions to `channel` Redis counts now, over all instances (PUBSUB NUMSUB)."""
        client = self._require_client("count subscribers")
        try:
            [(_, count)] = await client.pubsub_numsub(channel)
        except _FAILURES as exc:
            raise self._error("count subscribers", exc) from None
        return int(count)

    async def _open_pubsub(self, client: Redis, channel: str) -> PubSub:
        """A new PubSub whose SUBSCRIBE the server has confirmed (bounded by `timeout`)."""
        pubsub = client.pubsub()
        try:
            async with asyncio.timeout(self.timeout):
                await pubsub.subscribe(channel)
                while (msg := await pubsub.get_message(timeout=None)) is None or msg["type"] != "subscribe":
                    pass
            return pubsub
        except BaseException:
            await _close_quietly(pubsub)
            raise

    def _require_client(self, action: str) -> Redis:
        if self._client is None:
            raise BusError(f"cannot {action}: the Redis bus for {self.address} is not connected")
        return self._client

    def _scrub(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}"
        return text.replace(self._password, "***") if self._password else text

    def _error(self, action: str, exc: BaseException) -> BusError:
        return BusError(f"cannot {action} (Redis at {self.address}): {self._scrub(exc)}")


class _RedisSubscription(QueueSubscription):
    """A mailbox fed by a reader task that reads one PubSub and replaces it when its connection dies."""

    def __init__(self, bus: RedisBus, client: Redis, channel: str, pubsub: PubSub) -> None:
        super().__init__(channel, bus.maxsize)
        self._bus, self._client = bus, client
        self._task = asyncio.create_task(self._pump(pubsub), name=f"screenpop.bus reader {channel!r}")

    async def aclose(self) -> None:
        """End iteration, stop the reader and close its connection. Idempotent."""
        self.close()
        self._task.cancel()
        await asyncio.wait({self._task})

    async def _pump(self, pubsub: PubSub) -> None:
        try:
            while True:
                try:
                    await self._read(pubsub)
                except _FAILURES as exc:
                    self._warn("lost the subscription (%s); resubscribing", self._bus._scrub(exc))
                await _close_quietly(pubsub)
                pubsub = await self._resubscribe()
        except Exception:
            logger.exception("bus: the subscription to %r failed; ending it", self.channel)
        finally:
            self.close()
            await _close_quietly(pubsub)

    async def _read(self, pubsub: PubSub) -> None:
        """Copy messages into the mailbox until the connection fails or stays silent (both raise)."""
        interval = self._bus.health_check_interval
        awaiting_pong = False
        while True:
            msg = await pubsub.get_message(timeout=interval)
            if msg is None:
                if awaiting_pong:
                    raise TimeoutError(f"no answer to PING within {interval} s")
                await pubsub.ping(_PING_PAYLOAD)
                awaiting_pong = True
                continue
            awaiting_pong = False  # any traffic shows the connection is alive
            if msg["type"] == "message":
                data = msg["data"]
                try:
                    self.put(data.decode("utf-8") if isinstance(data, bytes) else str(data))
                except UnicodeDecodeError:
                    self._warn("dropped a message that is not UTF-8")

    async def _resubscribe(self) -> PubSub:
        """Open a new subscription, waiting with exponential backoff and jitter between attempts."""
        delay, attempt = BACKOFF_FIRST, 0
        while True:
            attempt += 1
            await asyncio.sleep(random.uniform(delay / 2, delay))
            try:
                pubsub = await self._bus._open_pubsub(self._client, self.channel)
            except _FAILURES as exc:
                delay = min(delay * 2, BACKOFF_MAX)
                why = self._bus._scrub(exc)
                self._warn("resubscribe attempt %d failed (%s); next try within %.1f s", attempt, why, delay)
                continue
            self._warn("resubscribed after %d attempt(s); messages published meanwhile were lost", attempt)
            return pubsub

    def _warn(self, text: str, *args: object) -> None:
        logger.warning("bus: channel %r at Redis %s: " + text, self.channel, self._bus.address, *args)


async def _close_quietly(pubsub: PubSub) -> None:
    try:
        await pubsub.aclose()
    except Exception:
        logger.debug("bus: error while closing a Redis PubSub", exc_info=True)
