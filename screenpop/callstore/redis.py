"""The Redis call store (`redis://`, `rediss://`): every instance on one Redis shares every call.

With `channel` (the bus's agent channel, when the store and the bus share one Redis), a change's agent
messages are published by the script that stores it, so one call's messages arrive everywhere in the order
of its changes (two instances publishing on their own could be overtaken: a section before its card).
With `instance` too, each message goes only to the instances that hold a socket of one of its recipients
(`route`, this instance's channel `<channel>:<instance>`): the hub says where its agents are (`present`,
before it reads a socket's snapshot, and again every `presence_s` / 3 and after a reconnect), and the
script reads that in the same atomic step as the write. A change stored after an instance said so is
routed to it; one stored before is in the snapshot it reads next. An agent's entry is not removed when
their last socket closes: it ends `presence_s` later (a message routed to an instance with no socket for
it is dropped there), so no race between a closing and an opening socket can leave a socket unrouted.

Keys (`<prefix>` is SCREENPOP_BUS_PREFIX; each written with a TTL of `ttl_s`, refreshed on every write):

    <prefix>:call:<call id>     the call's record, JSON (`CallRecord.to_json`)
    <prefix>:call:<call id>:v   its version: how many changes were stored
    <prefix>:agent:<agent id>   sorted set: the calls whose card the agent has, scored by when it got it
    <prefix>:due                sorted set: the calls whose lookup has pending sections, scored by `due()`
    <prefix>:where:<agent id>   sorted set: the instances holding a socket of the agent, scored by until when
                                (routing only; `present`, refreshed by the hub, TTL `presence_s`)

`apply` is optimistic: run the step on what this store believes the call is, then a script stores the new
record, its version + 1 and the index updates only if the version is still the one believed
(compare-and-set). If it is not, the script stores nothing and answers the call's version and record as
they are, and the step runs again on those (at most `attempts` times), so one call's transitions are
linearizable across instances while the state machine stays in Python
(docs/decisions/0005-shared-call-state.md). What the store believes: after its own last change of the call,
what it wrote; otherwise that the call is new (no record, version 0), but only when the step starts the
call's lookup on that guess (a call's first event); any other change of a call this store does not know
(an `ended` whose `ringing` went to another instance) reads the record first (MGET). So: one round trip
for a new call and for a change following this store's own; two for a call another instance changed last
(the read and the set; or the set answers the record, the second set stores).
Changes of one call on one instance take turns, and those that came in the same turn of the event loop or
while one was being stored (a lookup's sections settling together) are stored together: their steps in
order, one compare-and-set.
Index entries whose record expired are skipped and removed when read.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from redis.asyncio import Redis, RedisError
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from screenpop.callstore.base import CallStore, CallStoreError, Render, Step
from screenpop.callstore.machine import CallRecord, Outcome
from screenpop.callstore.redis_script import STORE, routed
from screenpop.models import Card
from screenpop.redisurl import RedisURLError, close_quietly, parse_redis_url

_FAILURES = (RedisError, OSError)
_KNOWN_MAX = 10_000  # calls whose last change this store remembers



class _Change:
    """A change waiting for its call's turn on this instance; `stored` once it is taken into a batch."""

    __slots__ = ("index", "render", "step", "stored")

    def __init__(self, step: Step, render: Render | None) -> None:
        self.step, self.render = step, render
        self.stored: asyncio.Future[list[Outcome]] | None = None  # the batch's outcomes, once stored
        self.index = 0  # where this change's outcome is among them


class _Turn:
    """The changes of one call in flight on this instance: one batch at a time, the others wait."""

    __slots__ = ("lock", "users", "waiting")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0  # the changes holding or waiting for the lock (the turn is dropped at 0)
        self.waiting: list[_Change] = []  # not taken into a batch yet, in the order they came


class RedisCallStore(CallStore):
    """Calls in Redis under `prefix`; `timeout` bounds connecting and each command."""

    def __init__(self, url: str, *, prefix: str = "screenpop", ttl_s: float = 4 * 3600, timeout: float = 2.0,
                 attempts: int = 20, channel: str | None = None, instance: str | None = None,
                 presence_s: float = 90.0, clock: Callable[[], float] = time.time) -> None:
        try:
            self._url = parse_redis_url(url)
        except RedisURLError as exc:
            raise CallStoreError(str(exc)) from None
        self.address = self._url.address
        self.prefix, self.ttl_s, self.timeout, self.attempts = prefix, ttl_s, timeout, attempts
        self._client: Redis | None = None
        self.conflicts = 0  # changes that found the call changed meanwhile, and ran again
        # the version and record of the last change this store made to each call: the next change of that call
        # here (a lookup settling its sections) runs its step on that very object (no read, no JSON parsed) and
        # tries the compare-and-set; if another instance changed the call meanwhile, the set fails, the object
        # (changed by the step) is dropped and the record Redis answers is used (bounded, LRU). As with the
        # memory store, an outcome's record is live: read it right after `apply`, do not keep it.
        self._last: OrderedDict[str, tuple[str, CallRecord]] = OrderedDict()
        self._turns: dict[str, _Turn] = {}  # calls with a change in flight here: the others wait their turn
        self.channel = channel  # where a change's messages are published with it (the bus's agent channel)
        self.publishes = channel is not None
        self.instance, self.presence_s = instance, presence_s
        self.clock = clock  # unix seconds: index and presence scores are compared across instances
        self.route = f"{channel}:{instance}" if channel is not None and instance is not None else None

    def __repr__(self) -> str:
        return f"<RedisCallStore {self.address} prefix={self.prefix!r}>"

    def _key(self, call_id: str) -> str:
        return f"{self.prefix}:call:{call_id}"

    def _version_key(self, call_id: str) -> str:
        return f"{self.prefix}:call:{call_id}:v"

    def _agent_key(self, agent_id: str) -> str:
        return f"{self.prefix}:agent:{agent_id}"

    def _where_key(self, agent_id: str) -> str:
        return f"{self.prefix}:where:{agent_id}"

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
            await client.script_load(STORE)  # so the first change needs no extra round trip (EVALSHA reloads it)
        except _FAILURES as exc:
            await close_quietly(client, "the call store")
            raise self._error("connect", exc) from None
        self._client = client
        self._script = client.register_script(STORE)

    async def close(self) -> None:
        """Close the client. Idempotent, never raises."""
        client, self._client = self._client, None
        await close_quietly(client, f"the call store at {self.address}")

    def _require(self) -> Redis:
        if self._client is None:
            raise CallStoreError(f"the Redis call store at {self.address} is not connected")
        return self._client

    def _error(self, action: str, exc: BaseException) -> CallStoreError:
        return CallStoreError(f"cannot {action} (Redis at {self.address}): "
                              f"{self._url.scrub(f'{type(exc).__name__}: {exc}')}")

    async def apply(self, call_id: str, step: Step, render: Render | None = None) -> Outcome:
        """See `CallStore.apply`: MGET the record and its version, run the step, then one script stores the
        new record only if the version is still the one read (a compare-and-set), with the index updates and,
        with a `channel`, the change's messages; again on a conflict. Redis runs a script at once, so the
        messages of one call reach every subscriber in the order its changes were stored, whichever instance
        made them, and a change is never stored without its messages, nor sent without being stored.

        Changes of one call made on this instance take turns (a lock per call in flight), and the changes
        that came in the same turn of the event loop, or while one was being stored, are stored together,
        in the order they came, with one compare-and-set: a lookup's sections settle together, and would
        otherwise race each other to the compare-and-set and read the record again. A batch with more than
        one change is stored even if the change that took the others along is cancelled; a change
        cancelled while it waits is not applied."""
        turn = self._turns.get(call_id)
        if turn is None:
            turn = self._turns[call_id] = _Turn()
        change = _Change(step, render)
        turn.waiting.append(change)
        turn.users += 1
        try:
            async with turn.lock:
                if change.stored is None:  # not taken along by an earlier change: take every change waiting
                    await asyncio.sleep(0)  # after the other changes of this loop turn (sections answered together)
                    batch, turn.waiting = turn.waiting, []
                    if len(batch) == 1:
                        return (await self._apply(call_id, batch))[0]
                    stored = asyncio.ensure_future(self._apply(call_id, batch))
                    for i, c in enumerate(batch):
                        c.stored, c.index = stored, i
                assert change.stored is not None
                return (await asyncio.shield(change.stored))[change.index]
        finally:
            if change.stored is None and change in turn.waiting:  # cancelled before its turn: not applied
                turn.waiting.remove(change)
            turn.users -= 1
            if turn.users == 0:
                del self._turns[call_id]

    async def _apply(self, call_id: str, batch: list[_Change]) -> list[Outcome]:
        """The batch's steps one after the other on the record, stored with one compare-and-set."""
        client, key = self._require(), self._key(call_id)
        ttl = max(1, int(self.ttl_s))
        # what the next attempt starts from: this store's own last change of the call, else a new call (a guess:
        # `guessed` until Redis has answered what the call is)
        known = self._last.pop(call_id, None)
        guessed = known is None
        rec: CallRecord | None
        read, rec = known if known is not None else ("0", None)
        try:
            for _ in range(self.attempts):
                before = set(rec.holders()) if rec is not None else set()
                outs, texts, changed = [], [], False
                for change in batch:
                    out = change.step(rec)
                    outs.append(out)
                    if out.changed and out.record is not None:
                        changed, rec = True, out.record
                        if self.channel is not None and change.render is not None:
                            texts += change.render(out)  # (now: a later step of the batch changes the record)
                if guessed and not (changed and any(o.start == "fresh" for o in outs)):
                    # the guess holds only for a call's first event (it starts the lookup); anything else (an
                    # `ended` from another instance, nothing to store for a new call): read what the call is
                    raw, version = await client.mget(key, self._version_key(call_id))
                    read, guessed = _text(version) if version is not None else "0", False
                    rec = CallRecord.from_json(raw) if raw is not None else None
                    continue
                if not changed or rec is None:
                    return outs
                holders = rec.holders()
                leaving = sorted(before.difference(holders))
                entering = sorted(a for a in holders if a not in before)
                due = rec.due()
                keys = [key, self._version_key(call_id), self._due_key,
                        *(self._agent_key(a) for a in leaving), *(self._agent_key(a) for a in entering)]
                text = rec.to_json()
                args: list[str | int | float] = [read, text, ttl, self.clock(), "" if due is None else due,
                                                 call_id, len(leaving), len(entering), self.channel or ""]
                if self.route is None:
                    args += ["", *texts]
                else:
                    args += routed(texts, keys, self._where_key)
                answer = await self._script(keys=keys, args=args)
                if not isinstance(answer, list):  # stored
                    if not rec.ended:
                        self._last[call_id] = (str(int(read) + 1), rec)
                        while len(self._last) > _KNOWN_MAX:
                            self._last.popitem(last=False)
                    return outs
                if not guessed and known is None:
                    self.conflicts += 1  # changed by another instance between this store's read and its set
                known, guessed = None, False  # (a guess that was wrong, or a change made elsewhere: no conflict)
                read, rec = _text(answer[0]), CallRecord.from_json(answer[1]) if answer[1] is not None else None
        except _FAILURES as exc:
            raise self._error(f"apply a change to call {call_id!r}", exc) from None
        raise CallStoreError(f"call {call_id!r} changed {self.attempts} times while a change was applied; gave up")

    async def present(self, agent_ids: Iterable[str]) -> None:
        """See `CallStore.present`: ZADD this instance to each agent's presence set, scored by until when
        (now + `presence_s`), entries past that dropped, in one pipeline."""
        if self.route is None:
            return
        now = self.clock()
        try:
            async with self._require().pipeline(transaction=False) as pipe:
                for agent_id in agent_ids:
                    where = self._where_key(agent_id)
                    pipe.zadd(where, {str(self.instance): now + self.presence_s})
                    pipe.zremrangebyscore(where, "-inf", now)
                    pipe.expire(where, int(self.presence_s) + 1)
                await pipe.execute()
        except _FAILURES as exc:
            raise self._error("say where this instance's agents are", exc) from None

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
                if rec is None or agent_id not in rec.holders():
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


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
