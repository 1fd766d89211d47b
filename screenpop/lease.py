"""Leases: one holder at a time for a named resource across the cluster (a PBX's CTI connection).

    LeaseStore        the seam: take / renew / release a key for an owner, with a time to live
    MemoryLeaseStore  one process (the default, `memory://`): a dict with expiry times on an injected clock
    RedisLeaseStore   the cluster: `SET key owner NX PX ttl` to take; renew and release compare the owner
                      first, in one Lua script each (nobody renews or deletes a lease another owner holds)
    LeaseKeeper       one owner's view of one lease, on its own monotonic clock: when it may act, when to renew
    lease_store_from_url   the store for a URL: the bus URL when it is Redis, else memory
    lease_key         the key of a PBX URL: a hash of the URL without its secret, under the bus prefix

The rule that keeps two holders from ever acting at once (no CTI event applied twice across a takeover):

- The store expires a lease `ttl` after it was last taken or renewed, counted from when the store received
  the command: never earlier than `ttl` after the holder SENT it.
- The holder notes its own clock just before sending each take/renew. It treats the lease as its own only
  until `sent + ttl - margin` (`LeaseKeeper.valid_until`). It renews every `ttl / 3`; when a renewal fails
  it retries until `valid_until` and then stops at once: it hands no further event on and closes its
  connection, `margin` before the store could let anybody else take the lease.
- Another instance can take the lease only once the store has let it expire (or the holder released it on
  shutdown, after stopping). So the old holder has stopped before the new one starts, as long as the two
  clocks do not drift apart by `margin` within one `ttl` (they drift by parts per million).
- The new holder connects and resyncs from the PBX (the adapters list the live channels after every login):
  a call that rang while nobody held the connection is not lost; the call registry's dedup makes a call
  the old holder already reported change nothing.
"""

from __future__ import annotations

import abc
import hashlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from screenpop.redisurl import RedisURLError, close_quietly, parse_redis_url

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("screenpop.lease")

Clock = Callable[[], float]

# Compare-and-renew, compare-and-delete: only the owner's own lease is touched. 1 when it was the owner's.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class LeaseError(Exception):
    """The lease store cannot be reached; the message never holds a password."""


class LeaseStore(abc.ABC):
    """Where leases live. Every method either answers or raises LeaseError; none waits without bound."""

    @abc.abstractmethod
    async def take(self, key: str, owner: str, ttl_s: float) -> bool:
        """Take `key` for `owner` for `ttl_s` seconds when nobody holds it (or its lease expired).

        True when `owner` holds it now (newly taken; False when another owner holds it, including when
        `owner` itself still holds it: take is not renew). Raises LeaseError when the store cannot answer.
        """

    @abc.abstractmethod
    async def renew(self, key: str, owner: str, ttl_s: float) -> bool:
        """Extend `owner`'s lease on `key` to `ttl_s` seconds from now, only if `owner` still holds it.

        False when the lease expired or another owner holds it (then nothing changes). Raises LeaseError.
        """

    @abc.abstractmethod
    async def release(self, key: str, owner: str) -> bool:
        """Give `key` up if `owner` holds it, so another owner may take it at once; True if it did.

        Never touches another owner's lease. Raises LeaseError.
        """

    @abc.abstractmethod
    async def owner(self, key: str) -> str | None:
        """Who holds `key` now (None: nobody). Raises LeaseError."""

    async def ping(self) -> None:  # noqa: B027 - optional: a store in memory is always reachable
        """Return when the store answers; raise LeaseError when it does not."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Let go of connections. Must not raise."""


class MemoryLeaseStore(LeaseStore):
    """Leases of one process: every owner asking is in this process, so one instance always gets its lease."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._leases: dict[str, tuple[str, float]] = {}  # key -> (owner, expires at)

    def _holder(self, key: str) -> str | None:
        held = self._leases.get(key)
        if held is None or held[1] <= self.clock():
            self._leases.pop(key, None)
            return None
        return held[0]

    async def take(self, key: str, owner: str, ttl_s: float) -> bool:
        if self._holder(key) is not None:
            return False
        self._leases[key] = (owner, self.clock() + ttl_s)
        return True

    async def renew(self, key: str, owner: str, ttl_s: float) -> bool:
        if self._holder(key) != owner:
            return False
        self._leases[key] = (owner, self.clock() + ttl_s)
        return True

    async def release(self, key: str, owner: str) -> bool:
        if self._holder(key) != owner:
            return False
        del self._leases[key]
        return True

    async def owner(self, key: str) -> str | None:
        return self._holder(key)


class RedisLeaseStore(LeaseStore):
    """Leases in Redis: one key per lease, its value the owner, its expiry Redis's own (PX)."""

    def __init__(self, url: str, *, timeout_s: float = 2.0) -> None:
        try:
            self._url = parse_redis_url(url)
            self._client: Redis = self._url.client(socket_connect_timeout=timeout_s, socket_timeout=timeout_s,
                                                   decode_responses=True)
        except RedisURLError as err:
            raise LeaseError(str(err)) from None
        self._renew = self._client.register_script(_RENEW)
        self._release = self._client.register_script(_RELEASE)

    async def _call(self, what: str, coro: Any) -> Any:
        try:
            return await coro
        except Exception as err:  # redis-py's errors and OSError: never the password
            raise LeaseError(f"lease store {self._url.address}: {what} failed: "
                             f"{self._url.scrub(str(err)) or type(err).__name__}") from None

    async def take(self, key: str, owner: str, ttl_s: float) -> bool:
        return bool(await self._call("take", self._client.set(key, owner, nx=True, px=_ms(ttl_s))))

    async def renew(self, key: str, owner: str, ttl_s: float) -> bool:
        return bool(await self._call("renew", self._renew(keys=[key], args=[owner, _ms(ttl_s)])))

    async def release(self, key: str, owner: str) -> bool:
        return bool(await self._call("release", self._release(keys=[key], args=[owner])))

    async def owner(self, key: str) -> str | None:
        found = await self._call("read", self._client.get(key))
        return None if found is None else str(found)

    async def ping(self) -> None:
        await self._call("ping", self._client.ping())

    async def close(self) -> None:
        await close_quietly(self._client, "the CTI lease store")


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def lease_store_from_url(url: str, clock: Clock = time.monotonic) -> LeaseStore:
    """Redis (`redis://`, `rediss://` and the other forms screenpop.redisurl reads) when `url` is one, else
    memory. Raises LeaseError for a malformed Redis URL."""
    scheme = url.partition("://")[0]
    if scheme.startswith("redis"):
        return RedisLeaseStore(url)
    return MemoryLeaseStore(clock)


def pbx_name(url: str) -> str:
    """A PBX URL as it may be shown (probes, logs): scheme, host and port; no user, no secret."""
    try:
        u = urlsplit(url.strip())
        return f"{u.scheme}://{u.hostname or '?'}:{u.port or ''}".rstrip(":")
    except ValueError:
        return "?"


def lease_key(prefix: str, url: str) -> str:
    """The lease key of a PBX URL: `<prefix>.cti-lease.<hash>`, the hash of scheme, user, host and port (the
    secret and the options left out, so every instance given the same PBX finds the same key)."""
    try:
        u = urlsplit(url.strip())
        identity = f"{u.scheme}://{u.username or ''}@{(u.hostname or '').lower()}:{u.port or ''}"
    except ValueError:
        identity = "?"
    return f"{prefix}.cti-lease.{hashlib.sha256(identity.encode()).hexdigest()[:20]}"


class LeaseKeeper:
    """One owner's hold on one lease, judged by its own clock (see the module's rule).

    `ttl_s`: the lease's time to live in the store. `margin_s`: how long before the store could let the lease
    go the holder stops acting (default `ttl_s / 4`). `renew_every_s`: `ttl_s / 3`. `retry_s`: the pause
    between two attempts to take the lease, or to renew it after a failure.
    """

    def __init__(self, store: LeaseStore, key: str, owner: str, ttl_s: float, *, retry_s: float | None = None,
                 margin_s: float | None = None, clock: Clock = time.monotonic) -> None:
        self.store, self.key, self.owner, self.ttl_s = store, key, owner, ttl_s
        self.renew_every_s = ttl_s / 3
        self.margin_s = ttl_s / 4 if margin_s is None else margin_s
        self.retry_s = ttl_s / 9 if retry_s is None else retry_s
        if not 0 < self.margin_s < self.ttl_s - self.renew_every_s:
            raise ValueError("the margin must leave room for a renewal: 0 < margin < 2/3 of the lease")
        self.clock = clock
        self.valid_until = 0.0  # by our clock: the holder acts only before this
        self.renewed_at = 0.0

    @property
    def held(self) -> bool:
        """True while this owner may act on the lease (by its own clock)."""
        return self.clock() < self.valid_until

    def _granted(self, sent: float) -> None:
        self.renewed_at = sent
        self.valid_until = sent + self.ttl_s - self.margin_s

    async def take(self) -> bool:
        """Try to take the lease; True when held now. A store failure is logged and counts as not taken."""
        sent = self.clock()
        try:
            taken = await self.store.take(self.key, self.owner, self.ttl_s)
        except LeaseError as err:
            log.warning("cannot take lease %s: %s", self.key, err)
            return False
        if taken:
            self._granted(sent)
        return taken

    def renew_due(self) -> float:
        """Seconds until the next renewal should be sent (0: now)."""
        return max(0.0, self.renewed_at + self.renew_every_s - self.clock())

    async def renew(self) -> bool:
        """Renew; True when still held. False with `held` unchanged after a store failure (retry until
        `valid_until`); False with `held` now False when another owner holds it or the lease expired."""
        sent = self.clock()
        try:
            renewed = await self.store.renew(self.key, self.owner, self.ttl_s)
        except LeaseError as err:
            log.warning("cannot renew lease %s: %s", self.key, err)
            return False
        if renewed:
            self._granted(sent)
        else:
            self.valid_until = 0.0
        return renewed

    async def release(self) -> None:
        """Stop acting, then give the lease up so another owner may take it at once; never raises."""
        self.valid_until = 0.0
        try:
            await self.store.release(self.key, self.owner)
        except LeaseError as err:
            log.warning("cannot release lease %s (it expires by itself): %s", self.key, err)
