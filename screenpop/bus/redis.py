"""The Redis bus (`redis://`, `rediss://`, and behind Sentinel `redis+sentinel://`, `rediss+sentinel://`):
instances of screenpop share messages through Redis PUB/SUB.

Everything goes through redis-py's public client API, speaking RESP2 (`protocol=2`, the client's option;
an explicit `?protocol=` in the URL wins, and the bus works with either):
- `publish` is the client's PUBLISH on its connection pool; `publish_many` sends a batch in one round trip
  through `pipeline(transaction=False)` (a batch of one is a plain PUBLISH).
- Each subscription owns a redis-py `PubSub` (a dedicated connection) and a reader task that copies the
  channel's messages (`PubSub.get_message`) into a bounded mailbox, the same `QueueSubscription` as the
  memory backend (`maxsize` messages, the oldest dropped when full; or straight to a `listen` callback).

Failures:
- `connect()` PINGs the server; failure raises BusError naming host:port, never the password. A malformed
  URL raises BusError when the bus is built.
- `publish` is never retried (delivery is at most once); any failure raises BusError. A connection that
  failed is dropped by the client, so the next publish opens a new one.
- A subscription notices a lost connection at once when the socket closes, and within
  2 x `health_check_interval` when it goes silent: a watchdog next to the reader PINGs after a quiet
  interval and, after a second quiet interval with no answer, closes the subscription's connection, which
  ends the reader's read with an error. The reader then resubscribes with exponential backoff (0.1 s
  doubling up to 5 s, with jitter) and logs warnings on `screenpop.bus`. Messages published while it was
  disconnected are LOST: Redis PUB/SUB keeps nothing for absent subscribers.
- Behind Sentinel, the client follows the primary (`screenpop.redisurl.sentinel`): when the Sentinels name
  another primary it closes its connections, the subscription's too, so the reader resubscribes (on the new
  primary) as above, and the next publish goes to the new primary. Nothing here depends on the URL's form.
Iteration ends when the subscribe context exits or the bus disconnects.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis, RedisError
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from screenpop.bus.base import Bus, BusError
from screenpop.bus.memory import DEFAULT_MAXSIZE, QueueSubscription
from screenpop.redisurl import RedisURLError, close_quietly, parse_redis_url

__all__ = ["BACKOFF_FIRST", "BACKOFF_MAX", "RedisBus"]

logger = logging.getLogger("screenpop.bus")

BACKOFF_FIRST = 0.1  # seconds before the first resubscribe attempt; doubles on each failure
BACKOFF_MAX = 5.0
_PING_PAYLOAD = "screenpop-bus-keepalive"
_FAILURES = (RedisError, OSError)  # OSError includes TimeoutError (asyncio.timeout)


class RedisBus(Bus):
    """Publish/subscribe through a Redis server; `url` is any form of `screenpop.redisurl` (Sentinel too).

    `maxsize`: each subscription's mailbox; `health_check_interval`: quiet seconds before a subscription
    PINGs; `timeout`: seconds for connecting, for a command and for a SUBSCRIBE to be confirmed.
    """

    def __init__(
        self, url: str, *, maxsize: int = DEFAULT_MAXSIZE, health_check_interval: float = 5.0, timeout: float = 5.0
    ) -> None:
        try:
            self._url = parse_redis_url(url)
        except RedisURLError as exc:
            raise BusError(str(exc)) from None
        self.address = self._url.address
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
            client = self._url.client(protocol=2, socket_connect_timeout=self.timeout, socket_timeout=self.timeout,
                                      retry=no_retry)
        except RedisURLError as exc:
            raise BusError(str(exc)) from None
        try:
            await client.ping()
        except _FAILURES as exc:
            await close_quietly(client, "the bus")
            raise self._error("connect", exc) from None
        self._client = client

    async def disconnect(self) -> None:
        """End every subscription, then close the client. Idempotent, never raises."""
        client, self._client = self._client, None
        subscriptions, self._subscriptions = self._subscriptions, set()
        for sub in subscriptions:
            await sub.aclose()
        await close_quietly(client, f"the bus at {self.address}")

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
        if not messages:
            return
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
        return self._url.scrub(f"{type(exc).__name__}: {exc}")

    def _error(self, action: str, exc: BaseException) -> BusError:
        return BusError(f"cannot {action} (Redis at {self.address}): {self._scrub(exc)}")


class _RedisSubscription(QueueSubscription):
    """A mailbox fed by a reader task that reads one PubSub and replaces it when its connection dies."""

    def __init__(self, bus: RedisBus, client: Redis, channel: str, pubsub: PubSub) -> None:
        super().__init__(channel, bus.maxsize)
        self._bus, self._client = bus, client
        self._traffic = 0  # replies read so far: the watchdog's sign of life
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
        """Copy messages into the mailbox until the connection fails or the watchdog closes it (both raise)."""
        silent = asyncio.Event()  # set by the watchdog just before it closes the connection
        watchdog = asyncio.create_task(self._watch(pubsub, silent), name=f"screenpop.bus watchdog {self.channel!r}")
        try:
            while True:
                try:
                    msg = await pubsub.get_message(timeout=None)
                except Exception:
                    if silent.is_set():
                        interval = self._bus.health_check_interval
                        raise TimeoutError(f"no answer to PING within {interval} s") from None
                    raise
                self._traffic += 1  # any reply shows the connection is alive
                if msg is not None and msg["type"] == "message":
                    data = msg["data"]
                    try:
                        self.put(data.decode("utf-8") if isinstance(data, bytes) else str(data))
                    except UnicodeDecodeError:
                        self._warn("dropped a message that is not UTF-8")
        finally:
            watchdog.cancel()

    async def _watch(self, pubsub: PubSub, silent: asyncio.Event) -> None:
        """After a quiet interval, PING; after a second one with no reply, close the connection (the reader's
        read then fails and the reader resubscribes)."""
        interval = self._bus.health_check_interval
        while True:
            seen = self._traffic
            await asyncio.sleep(interval)
            if self._traffic != seen:
                continue
            try:
                await pubsub.ping(_PING_PAYLOAD)  # its reply is read by the reader
            except Exception as exc:  # the read fails too, or the next interval notices the silence
                logger.debug("bus: PING on channel %r failed: %s", self.channel, exc)
            await asyncio.sleep(interval)
            if self._traffic == seen:
                silent.set()
                await _close_quietly(pubsub)
                return

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
            self.reconnected()
            return pubsub

    def _warn(self, text: str, *args: object) -> None:
        logger.warning("bus: channel %r at Redis %s: " + text, self.channel, self._bus.address, *args)


async def _close_quietly(pubsub: PubSub) -> None:
    try:
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
    except Exception:
        logger.debug("bus: error while closing a Redis PubSub", exc_info=True)
