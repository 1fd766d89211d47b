"""The Redis call store (`redis://`, `rediss://`): every instance on one Redis shares every call.

With `channel` (the bus's agent channel, when the store and the bus share one Redis), a change's agent
messages are published inside its MULTI/EXEC, so one call's messages arrive everywhere in the order of
its changes (two instances publishing on their own could be overtaken: a section before its card).

Keys (`<prefix>` is SCREENPOP_BUS_PREFIX; each written with a TTL of `ttl_s`, refreshed on every write):

    <prefix>:call:<call id>     the call's record, JSON (`CallRecord.to_json`)
    <prefix>:agent:<agent id>   sorted set: the calls whose card the agent has, scored by when it got it
    <prefix>:due                sorted set: the calls whose lookup has pending sections, scored by `due()`

`apply` is optimistic: WATCH the call's key, GET it, run the step, then MULTI / SET + index updates / EXEC.
If another instance changed the call in between, EXEC fails and the step runs again on the new record (at
most `attempts` times), so one call's transitions are linearizable across instances while the state
machine stays in Python (docs/decisions/0005-shared-call-state.md). Three round trips per change; a step
that changes nothing costs two (WATCH, GET) and the UNWATCH. Index entries whose record expired are
skipped and removed when read.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from redis.asyncio import Redis, RedisError
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import WatchError

from screenpop.callstore.base import CallStore, CallStoreError, Render, Step
from screenpop.callstore.machine import CallRecord, Outcome
from screenpop.models import Card
from screenpop.redisurl import RedisURLError, parse_redis_url

logger = logging.getLogger("screenpop.callstore")

_FAILURES = (RedisError, OSError)


class RedisCallStore(CallStore):
    """Calls in Redis under `prefix`; `timeout` bounds connecting and each command."""

    def __init__(self, url: str, *, prefix: str = "screenpop", ttl_s: float = 4 * 3600, timeout: float = 2.0,
                 attempts: int = 20, channel: str | None = None) -> None:
        try:
            self._url = parse_redis_url(url)
        except RedisURLError as exc:
            raise CallStoreError(str(exc)) from None
        self.address = self._url.address
        self.prefix, self.ttl_s, self.timeout, self.attempts = prefix, ttl_s, timeout, attempts
        self._client: Redis | None = None
        self.conflicts = 0  # changes that found the call changed meanwhile, and ran again
        self.channel = channel  # where a change's messages are published with it (the bus's agent channel)
        self.publishes = channel is not None

    def __repr__(self) -> str:
        return f"<RedisCallStore {self.address} prefix={self.prefix!r}>"

    def _key(self, call_id: str) -> str:
        return f"{self.prefix}:call:{call_id}"

    def _agent_key(self, agent_id: str) -> str:
        return f"{self.prefix}:agent:{agent_id}"

    @property
    def _due_key(self) -> str:
        return f"{self.prefix}:due"

    async def connect(self) -> None:
        """Create the client and PING; raises CallStoreError naming host:port (never the password)."""
        if self._client is not None:
            return
        try:
            client = self._url.client(socket_connect_timeout=self.timeout, socket_timeout=self.timeout,
                                      retry=Retry(NoBackoff(), 1))
        except RedisURLError as exc:
            raise CallStoreError(str(exc)) from None
        try:
            await client.ping()
        except _FAILURES as exc:
            await client.aclose()
            raise self._error("connect", exc) from None
        self._client = client

    async def close(self) -> None:
        """Close the client. Idempotent, never raises."""
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except Exception:
                logger.warning("call store: error while closing the Redis client for %s", self.address)

    def _require(self) -> Redis:
        if self._client is None:
            raise CallStoreError(f"the Redis call store at {self.address} is not connected")
        return self._client

    def _error(self, action: str, exc: BaseException) -> CallStoreError:
        return CallStoreError(f"cannot {action} (Redis at {self.address}): "
                              f"{self._url.scrub(f'{type(exc).__name__}: {exc}')}")

    async def apply(self, call_id: str, step: Step, render: Render | None = None) -> Outcome:
        """See `CallStore.apply`: WATCH, GET, step, MULTI/EXEC; again on a conflict. With a `channel`, the
        change's messages are PUBLISHed inside the same MULTI/EXEC: Redis runs transactions one at a time,
        so the messages of one call reach every subscriber in the order its changes were stored, whichever
        instance made them (and a change is never stored without its messages, nor sent without being
        stored)."""
        client, key = self._require(), self._key(call_id)
        ttl = max(1, int(self.ttl_s))
        try:
            for _ in range(self.attempts):
                async with client.pipeline(transaction=True) as pipe:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    old = CallRecord.from_json(raw) if raw is not None else None
                    before = set(old.ringing) if old is not None else set()
                    out = step(old)
                    rec = out.record
                    if not out.changed or rec is None:
                        return out
                    pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                    pipe.set(key, rec.to_json(), ex=ttl)
                    self._index(pipe, call_id, rec, before, ttl)
                    if self.channel is not None and render is not None:
                        for text in render(out):
                            pipe.publish(self.channel, text)
                    try:
                        await pipe.execute()
                    except WatchError:
                        self.conflicts += 1
                        continue
                    return out
        except _FAILURES as exc:
            raise self._error(f"apply a change to call {call_id!r}", exc) from None
        raise CallStoreError(f"call {call_id!r} changed {self.attempts} times while a change was applied; gave up")

    def _index(self, pipe: Any, call_id: str, rec: CallRecord, before: set[str], ttl: int) -> None:
        """Queue the index updates for the record as it will be stored."""
        now = time.time()
        for agent in before.difference(rec.ringing):
            pipe.zrem(self._agent_key(agent), call_id)
        for agent in rec.ringing:
            if agent not in before:
                akey = self._agent_key(agent)
                pipe.zadd(akey, {call_id: now})
                pipe.zremrangebyscore(akey, "-inf", now - ttl)  # entries whose record expired long ago
                pipe.expire(akey, ttl)
        due = rec.due()
        if due is None:
            pipe.zrem(self._due_key, call_id)
        else:
            pipe.zadd(self._due_key, {call_id: due})
            pipe.expire(self._due_key, ttl)

    async def get(self, call_id: str) -> CallRecord | None:
        """See `CallStore.get`."""
        try:
            raw = await self._require().get(self._key(call_id))
        except _FAILURES as exc:
            raise self._error(f"read call {call_id!r}", exc) from None
        return CallRecord.from_json(raw) if raw is not None else None

    async def active(self, agent_id: str) -> list[Card]:
        """See `CallStore.active`: ZRANGE the agent's calls, MGET their records (two round trips)."""
        client, akey = self._require(), self._agent_key(agent_id)
        try:
            ids = [i.decode() if isinstance(i, bytes) else str(i) for i in await client.zrange(akey, 0, -1)]
            if not ids:
                return []
            raws = await client.mget([self._key(i) for i in ids])
            cards, gone = [], []
            for call_id, raw in zip(ids, raws, strict=True):
                rec = CallRecord.from_json(raw) if raw is not None else None
                if rec is None or rec.ended or agent_id not in rec.ringing:
                    gone.append(call_id)
                else:
                    cards.append(rec.card)
            if gone:
                await client.zrem(akey, *gone)
            return cards
        except _FAILURES as exc:
            raise self._error(f"read the calls of agent {agent_id!r}", exc) from None
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            raise CallStoreError(f"a call record of agent {agent_id!r} is not readable: {exc}") from None

    async def due(self, now: float, limit: int) -> list[str]:
        """See `CallStore.due`."""
        try:
            ids = await self._require().zrangebyscore(self._due_key, "-inf", now, start=0, num=limit)
        except _FAILURES as exc:
            raise self._error("read the due lookups", exc) from None
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]
