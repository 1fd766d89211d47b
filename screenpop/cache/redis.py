"""The Redis cache (`redis://`, `rediss://`): one cache shared by every instance of screenpop.

Each entry is one Redis string, `<prefix><key>` -> the entry's JSON text, written with `SET ... PX` so that
Redis itself forgets it when its time to live passes (an expired entry is never returned).

Failures never fail a lookup: the cache is an optimisation, the source is the truth.
- `connect()` PINGs; a server that does not answer is logged and the cache starts empty-handed (commands
  reconnect by themselves later). Only a malformed URL raises CacheError, at construction.
- A failing or slow command (each bounded by `timeout`, 0.25 s by default) makes `get` return None and
  skips `set`/`delete`. After a failure Redis is left alone for `retry_after_s` (1 s): during that time
  every call returns at once without a round trip, so a dead or black-holed server costs one timeout
  per second, not one per lookup. Warnings go to `screenpop.cache`, at most one per 10 s, and never
  carry the password.
- Stored data that is not an entry (another program wrote the key) reads as a miss, with a warning.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from redis.asyncio import Redis, RedisError
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from screenpop.cache.base import (
    CacheBackend,
    CacheError,
    Entry,
    RateLimitedLog,
    check_ttl,
    decode_entry,
    encode_entry,
)
from screenpop.redisurl import RedisURLError, close_quietly, parse_redis_url

__all__ = ["DEFAULT_PREFIX", "RedisCache"]

logger = logging.getLogger("screenpop.cache")

DEFAULT_PREFIX = "screenpop:cache:"
_FAILURES = (RedisError, OSError)  # OSError includes TimeoutError


class RedisCache(CacheBackend):
    """A cache in Redis; `url` is `redis://[:password@]host[:port][/db]` (or `rediss://` for TLS).

    `prefix` starts every key (several deployments can share one Redis); `timeout` bounds connecting and
    each command; `retry_after_s` is how long Redis is skipped after a failure; `clock` (monotonic
    seconds) is injectable for tests.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = 0.25,
        retry_after_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            self._url = parse_redis_url(url)
        except RedisURLError as exc:
            raise CacheError(str(exc)) from None
        self.address = self._url.address
        self.prefix, self.timeout, self.retry_after_s, self.clock = prefix, timeout, retry_after_s, clock
        self.failures = 0
        """How many commands failed (for metrics)."""
        self.skipped = 0
        """How many calls were answered without Redis because it failed less than `retry_after_s` ago."""
        self._client: Redis | None = None
        self._down_until = 0.0
        self._log = RateLimitedLog(logger, clock=clock)

    def __repr__(self) -> str:
        return f"<RedisCache {self.address} {'connected' if self._client else 'not connected'}>"

    @property
    def available(self) -> bool:
        """False while Redis is skipped after a failure."""
        return self._client is not None and self.clock() >= self._down_until

    async def connect(self) -> None:
        """Create the client and PING; a server that does not answer is logged, not raised."""
        if self._client is not None:
            return
        no_retry = Retry(NoBackoff(), 0, supported_errors=())  # a cache miss is cheaper than a retry
        try:
            self._client = self._url.client(socket_connect_timeout=self.timeout, socket_timeout=self.timeout,
                                            retry=no_retry)
        except RedisURLError as exc:
            raise CacheError(f"cannot use the Redis cache at {self.address}: {exc}") from None
        try:
            await self._client.ping()
        except _FAILURES as exc:
            self._failed("connect", exc)

    async def close(self) -> None:
        """Close the client. Idempotent, never raises."""
        client, self._client = self._client, None
        await close_quietly(client, f"the cache at {self.address}")

    async def get(self, key: str) -> Entry | None:
        """See `CacheBackend.get`."""
        client = self._usable("get")
        if client is None:
            return None
        try:
            raw = await client.get(self.prefix + key)
        except _FAILURES as exc:
            self._failed("get", exc)
            return None
        if raw is None:
            return None
        try:
            return decode_entry(raw)
        except CacheError as exc:
            # the key is left out: it holds a customer id or a phone number
            self._log.warning(
                "cache: ignored the value of a key under %r in Redis at %s: %s", self.prefix, self.address, exc
            )
            return None

    async def set(self, key: str, entry: Entry, ttl_s: float) -> None:
        """See `CacheBackend.set`; the time to live is rounded up to whole milliseconds."""
        check_ttl(ttl_s)
        text = encode_entry(entry)
        client = self._usable("set")
        if client is None:
            return
        try:
            await client.set(self.prefix + key, text.encode("utf-8"), px=max(1, math.ceil(ttl_s * 1000)))
        except _FAILURES as exc:
            self._failed("set", exc)

    async def delete(self, key: str) -> None:
        """See `CacheBackend.delete`."""
        client = self._usable("delete")
        if client is None:
            return
        try:
            await client.delete(self.prefix + key)
        except _FAILURES as exc:
            self._failed("delete", exc)

    def _usable(self, action: str) -> Redis | None:
        """The client, or None while Redis is skipped; raises CacheError when not connected."""
        if self._client is None:
            raise CacheError(f"cannot {action}: the Redis cache for {self.address} is not connected")
        if self.clock() < self._down_until:
            self.skipped += 1
            return None
        return self._client

    def _failed(self, action: str, exc: BaseException) -> None:
        self.failures += 1
        self._down_until = self.clock() + self.retry_after_s
        self._log.warning(
            "cache: Redis at %s failed on %s (%s); lookups go to the sources, next try in %.1f s",
            self.address,
            action,
            self._scrub(exc),
            self.retry_after_s,
        )

    def _scrub(self, exc: BaseException) -> str:
        return self._url.scrub(f"{type(exc).__name__}: {exc}")
