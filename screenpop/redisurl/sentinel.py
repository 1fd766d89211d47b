"""The client of a Sentinel URL: redis-py's Sentinel support, plus following the primary at once.

`sentinel_client(url, options)` is `redis.asyncio.sentinel.Sentinel(...).master_for(master, ...)`: each new
connection asks the Sentinels where the primary is, and a connection still on a demoted primary fails on
its first write (READONLY) and is replaced. That alone leaves a gap: after a failover the old primary keeps
taking writes and PUBLISHes from the connections it still holds until the Sentinels demote it (about ten
seconds later for a primary that is still up; they then close its clients), and those writes are lost when
it resyncs from the new primary.

So the pool (`FollowingPool`) also follows the primary itself, from its first connection until the client is
closed: one follower task per client, subscribed to `+switch-master` on one Sentinel (the next one when that
one fails), that also asks the Sentinels where the primary is every FOLLOW_POLL_S seconds (a switch missed
while no Sentinel was reachable, or a Sentinel that stays silent). When the primary moved, every connection
of the pool is closed, the busy ones too (a subscription, a command in flight): their users see a connection
error, as for any dropped connection, and the next connection goes to the new primary. Nothing is added to
any command's path: the follower costs one Sentinel round trip per FOLLOW_POLL_S per client.

The pools of one process on the same master and Sentinels move together: the first follower that sees the
move closes the connections of all of them. Otherwise the bus could already be subscribed on the new primary
while the call store still writes (and publishes) on the old one, whose writes are lost when it is demoted.

The client's `aclose()` stops the follower and closes the Sentinel connections too. Passwords are never
logged: the follower names only the master and the addresses.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from redis.asyncio import Redis, RedisError
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff

if TYPE_CHECKING:
    from redis.asyncio.connection import AbstractConnection

    from screenpop.redisurl import RedisURL

__all__ = ["FOLLOW_POLL_S", "SWITCH_CHANNEL", "FollowingPool", "SentinelRedis", "sentinel_client"]

logger = logging.getLogger("screenpop.redis")

FOLLOW_POLL_S = 5.0  # seconds between two questions to the Sentinels when no +switch-master came
SWITCH_CHANNEL = "+switch-master"  # Sentinel publishes "<master> <old-ip> <old-port> <new-ip> <new-port>" there
_SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")
_FAILURES = (RedisError, OSError)
_POOLS: weakref.WeakSet[FollowingPool] = weakref.WeakSet()  # this process's pools, to move them together


def sentinel_client(url: RedisURL, options: dict[str, Any]) -> Redis:
    """The client of the primary `url.master`, found through `url.sentinels`; `options` are `Redis` keyword
    options, the URL's own query options winning. Raises ValueError/TypeError for a malformed option."""
    query = dict(parse_qsl(urlsplit(url.text).query, keep_blank_values=True))
    sentinel_auth = {k.removeprefix("sentinel_"): query.pop(k) for k in _SENTINEL_OPTIONS if k in query}
    # redis-py reads the data nodes' options from a plain URL of the same user, password, db and query
    userinfo = ""
    if url.username or url.password:
        userinfo = f"{quote(url.username or '', safe='')}:{quote(url.password or '', safe='')}@"
    plain = f"{'rediss' if url.tls else 'redis'}://{userinfo}sentinel-primary/{url.db}?{urlencode(query)}"
    kwargs = {**options, **parse_url(plain)}
    for key in ("host", "port", "connection_class"):
        kwargs.pop(key, None)
    if url.tls:
        kwargs["ssl"] = True  # SentinelConnectionPool then uses its TLS connection class
    on_sentinels: dict[str, Any] = {k: v for k, v in kwargs.items() if k.startswith(("socket_", "ssl"))}
    on_sentinels.update(sentinel_auth)
    on_sentinels["retry"] = Retry(NoBackoff(), 0)  # a Sentinel that fails is skipped for the next one
    assert url.master is not None
    sentinel = Sentinel(list(url.sentinels), sentinel_kwargs=on_sentinels)  # type: ignore[no-untyped-call]
    client: Redis = sentinel.master_for(url.master, redis_class=SentinelRedis, connection_pool_class=FollowingPool,
                                        **kwargs)
    return client


class FollowingPool(SentinelConnectionPool):
    """redis-py's Sentinel pool of the primary, with a follower task that closes every connection when the
    Sentinels name another primary (see the module docstring). `switches` counts the moves seen."""

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        self.switches = 0
        self._primary: tuple[object, object] | None = None  # where this pool's connections go (host, port)
        self._follower: asyncio.Task[None] | None = None
        self._stopping = False
        self._group = (service_name, tuple(sorted(
            (str(c.connection_pool.connection_kwargs.get("host")), str(c.connection_pool.connection_kwargs.get("port")))
            for c in sentinel_manager.sentinels)))
        _POOLS.add(self)

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        """redis-py's, starting the follower with the first connection (it needs the running loop)."""
        if self._follower is None and not self._stopping:
            self._follower = asyncio.create_task(self._follow(), name=f"screenpop.redis follow {self.service_name!r}")
        connection: AbstractConnection = await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        if self._primary is None:
            self._primary = _address(connection)
        return connection

    async def stop(self) -> None:
        """Stop the follower and close the Sentinel connections. Idempotent, never raises."""
        self._stopping = True
        follower, self._follower = self._follower, None
        # redis-py's read with a timeout can swallow a cancellation that lands as its timeout fires (Python
        # 3.11's asyncio.timeout): cancel again until the task is done, the flag ending its loop meanwhile
        for _ in range(50):
            if follower is None or follower.done():
                break
            follower.cancel()
            await asyncio.wait({follower}, timeout=0.1)
        try:
            await self.sentinel_manager.aclose()
        except Exception:
            logger.debug("redis: error while closing the Sentinel connections", exc_info=True)

    async def check_primary(self) -> bool:
        """Ask the Sentinels where the primary is; when it is not where this pool's connections went, close
        every connection of the pool, idle or busy (redis-py's public `disconnect`): they reconnect to the new
        primary. True if the primary moved."""
        try:
            now = await self.get_master_address()  # type: ignore[no-untyped-call]  # closes the idle ones if moved
        except MasterNotFoundError:
            logger.warning("redis: no Sentinel names a primary for %r", self.service_name)
            return False
        before, self._primary = self._primary, now
        if before is None or before == now:
            return False
        logger.warning("redis: the primary of %r is now %s:%s (was %s:%s); closing its connections to reconnect",
                       self.service_name, *now, *before)
        self.switches += 1
        await self.disconnect(inuse_connections=True)
        for pool in [p for p in list(_POOLS) if p is not self and p._group == self._group and not p._stopping]:
            try:
                await pool.moved(now)
            except Exception:  # another client's trouble (closed meanwhile) is not this one's
                logger.debug("redis: error while moving another pool of %r", self.service_name, exc_info=True)
        return True

    async def moved(self, now: tuple[object, object]) -> None:
        """Another pool of this process found the primary at `now`: close every connection of this pool, idle
        or busy, unless they already go there (or it has none yet)."""
        if self._primary is None or self._primary == now:
            return
        self._primary = now
        self.switches += 1
        await self.disconnect(inuse_connections=True)

    async def _follow(self) -> None:
        turn = 0
        while not self._stopping:
            sentinels: list[Redis] = self.sentinel_manager.sentinels
            sentinel = sentinels[turn % len(sentinels)]
            turn += 1
            pubsub = sentinel.pubsub()
            try:
                await pubsub.subscribe(SWITCH_CHANNEL)
                while not self._stopping:
                    await self.check_primary()
                    msg = await pubsub.get_message(timeout=FOLLOW_POLL_S)
                    if msg is not None and msg["type"] == "message" and _names(msg["data"], self.service_name):
                        # that Sentinel knows first: ask it first (discover_master asks them in order)
                        if sentinel in sentinels:
                            sentinels.remove(sentinel)
                            sentinels.insert(0, sentinel)
            except _FAILURES as exc:
                logger.debug("redis: following the primary of %r through a Sentinel failed (%s: %s)",
                             self.service_name, type(exc).__name__, exc)
                await asyncio.sleep(min(FOLLOW_POLL_S, 0.2 * turn))
            finally:
                try:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                except Exception:
                    logger.debug("redis: error while closing a Sentinel subscription", exc_info=True)


class SentinelRedis(Redis):
    """The client of a Sentinel URL: a plain `Redis` whose `aclose()` also stops its pool's follower and closes
    the Sentinel connections."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        """Close the client (and, as redis-py decides, its pool; then the follower and Sentinels too)."""
        pool = self.connection_pool
        try:
            await super().aclose(close_connection_pool)
        finally:
            closing = self.auto_close_connection_pool if close_connection_pool is None else close_connection_pool
            if closing and isinstance(pool, FollowingPool):
                await pool.stop()


def _address(connection: AbstractConnection) -> tuple[object, object]:
    return getattr(connection, "host", None), getattr(connection, "port", None)


def _names(data: bytes | str, master: str) -> bool:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
    return text.split(" ", 1)[0] == master
