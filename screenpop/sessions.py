"""Login sessions kept on the server: issued at login, ended by logout, expiry or an administrator.

A session token is 32 random bytes (URL-safe base64) that the browser holds in an HttpOnly cookie (or a
client as a bearer token). The server keeps only its SHA-256 (the session id): a copy of the store does not
hold usable tokens. The record says whose session it is and when it expires (absolute: SCREENPOP_SESSION_TTL_S
after login).

    MemorySessions   one instance (sessions end with the process)
    RedisSessions    in the bus's Redis: every instance sees a login, a logout and a revocation at once;
                     a key per session (`<prefix>.session.<id>`, its TTL Redis's own) and a set per agent

`SessionGuard` watches the open agent sockets of this instance: every `check_s` seconds it asks the store
which of their sessions still live, and closes the others with 4401 ("session ended: log in again"); the
console goes back to the login page. A logout or a revocation on this instance closes them at once.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from screenpop.redisurl import RedisURLError, close_quietly, parse_redis_url

log = logging.getLogger("screenpop.sessions")

SESSION_ENDED = 4401  # the socket's close code when its session has ended (HTTP 401's meaning, in 4xxx)
SESSION_ENDED_REASON = "session ended: log in again"


def session_id(token: str) -> str:
    """The id the server keeps for a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class Session:
    """A live session: its id (never the token), its agent, when it expires (unix seconds)."""

    id: str
    agent_id: str
    expires_at: float


class SessionStore(abc.ABC):
    """Where sessions live. Every method may raise SessionStoreError when the store cannot be reached."""

    def __init__(self, ttl_s: int) -> None:
        self.ttl_s = ttl_s

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect (lazily is fine)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; must not raise."""

    async def create(self, agent_id: str) -> tuple[str, Session]:
        """A new session for `agent_id`: the token to hand to the client, and the record."""
        token = secrets.token_urlsafe(32)
        session = Session(session_id(token), agent_id, time.time() + self.ttl_s)
        await self._put(session)
        return token, session

    async def check(self, token: str | None) -> Session | None:
        """The live session of `token`, or None (unknown, expired or revoked)."""
        if not token or len(token) > 200:
            return None
        return await self._get(session_id(token))

    @abc.abstractmethod
    async def _put(self, session: Session) -> None:
        """Store a new session until its expiry."""

    @abc.abstractmethod
    async def _get(self, sid: str) -> Session | None:
        """The live session with this id, or None."""

    @abc.abstractmethod
    async def revoke(self, sid: str) -> None:
        """End one session (logout). Unknown ids are ignored."""

    @abc.abstractmethod
    async def revoke_agent(self, agent_id: str) -> int:
        """End every session of an agent; how many there were."""

    @abc.abstractmethod
    async def alive(self, sids: list[str]) -> set[str]:
        """Which of these session ids are still live."""


class SessionStoreError(Exception):
    """The session store cannot be reached (the request is answered 503)."""


class MemorySessions(SessionStore):
    """Sessions in this process."""

    def __init__(self, ttl_s: int, clock: Callable[[], float] = time.time) -> None:
        super().__init__(ttl_s)
        self._clock = clock
        self._by_id: dict[str, Session] = {}
        self._by_agent: dict[str, set[str]] = {}

    def _sweep(self) -> None:
        now = self._clock()
        for sid in [s.id for s in self._by_id.values() if s.expires_at <= now]:
            self._drop(sid)

    def _drop(self, sid: str) -> None:
        session = self._by_id.pop(sid, None)
        if session is not None:
            ids = self._by_agent.get(session.agent_id, set())
            ids.discard(sid)
            if not ids:
                self._by_agent.pop(session.agent_id, None)

    async def _put(self, session: Session) -> None:
        if len(self._by_id) > 10_000:
            self._sweep()
        self._by_id[session.id] = session
        self._by_agent.setdefault(session.agent_id, set()).add(session.id)

    async def _get(self, sid: str) -> Session | None:
        session = self._by_id.get(sid)
        if session is None or session.expires_at <= self._clock():
            return None
        return session

    async def revoke(self, sid: str) -> None:
        self._drop(sid)

    async def revoke_agent(self, agent_id: str) -> int:
        ids = list(self._by_agent.get(agent_id, ()))
        for sid in ids:
            self._drop(sid)
        return len(ids)

    async def alive(self, sids: list[str]) -> set[str]:
        now = self._clock()
        return {sid for sid in sids if (s := self._by_id.get(sid)) is not None and s.expires_at > now}


class RedisSessions(SessionStore):
    """Sessions in Redis, shared by every instance (keys under `prefix`)."""

    def __init__(self, url: str, prefix: str, ttl_s: int, *, timeout_s: float = 2.0) -> None:
        super().__init__(ttl_s)
        try:
            self._url = parse_redis_url(url)
            self._client: Any = self._url.client(socket_connect_timeout=timeout_s, socket_timeout=timeout_s,
                                                 decode_responses=True, retry=Retry(NoBackoff(), 1))
        except RedisURLError as err:
            raise SessionStoreError(str(err)) from None
        self._prefix = prefix

    def _key(self, sid: str) -> str:
        return f"{self._prefix}.session.{sid}"

    def _agent_key(self, agent_id: str) -> str:
        return f"{self._prefix}.sessions-of.{agent_id}"

    async def _call(self, what: str, coro: Awaitable[Any]) -> Any:
        try:
            return await coro
        except Exception as err:  # redis-py's errors and OSError: never the password
            raise SessionStoreError(f"session store {self._url.address}: {what} failed: "
                                    f"{self._url.scrub(str(err)) or type(err).__name__}") from None

    async def close(self) -> None:
        await close_quietly(self._client, "the session store")

    async def _put(self, session: Session) -> None:
        ttl_ms = max(1, int((session.expires_at - time.time()) * 1000))
        pipe = self._client.pipeline(transaction=True)
        pipe.set(self._key(session.id), f"{session.expires_at}:{session.agent_id}", px=ttl_ms)
        pipe.sadd(self._agent_key(session.agent_id), session.id)
        pipe.pexpire(self._agent_key(session.agent_id), ttl_ms, gt=True)
        pipe.pexpire(self._agent_key(session.agent_id), ttl_ms, nx=True)
        await self._call("login", pipe.execute())

    async def _get(self, sid: str) -> Session | None:
        value = await self._call("check", self._client.get(self._key(sid)))
        if not value:
            return None
        expires, _, agent_id = str(value).partition(":")
        return Session(sid, agent_id, float(expires))

    async def revoke(self, sid: str) -> None:
        await self._call("logout", self._client.delete(self._key(sid)))

    async def revoke_agent(self, agent_id: str) -> int:
        ids = await self._call("revoke", self._client.smembers(self._agent_key(agent_id)))
        if not ids:
            return 0
        found = await self._call("revoke", self._client.delete(*[self._key(s) for s in ids],
                                                               self._agent_key(agent_id)))
        return max(0, int(found) - 1)

    async def alive(self, sids: list[str]) -> set[str]:
        if not sids:
            return set()
        values = await self._call("check", self._client.mget([self._key(s) for s in sids]))
        return {sid for sid, value in zip(sids, values, strict=True) if value}


def sessions_from_url(url: str, prefix: str, ttl_s: int) -> SessionStore:
    """Redis (the bus's, when it is Redis: every instance agrees) or memory."""
    if url.partition("://")[0].startswith("redis"):
        return RedisSessions(url, prefix, ttl_s)
    return MemorySessions(ttl_s)


Closer = Callable[[int, str], Awaitable[None]]


@dataclass
class _Watched:
    session: Session
    close: Closer


@dataclass
class SessionGuard:
    """Closes this instance's agent sockets whose session has ended (expired, logged out, revoked)."""

    store: SessionStore
    check_s: float = 1.0
    _sockets: dict[int, _Watched] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def watch(self, key: int, session: Session, close: Closer) -> None:
        """Watch a socket (`key` unique per socket) until `unwatch`; `close(code, reason)` ends it."""
        self._sockets[key] = _Watched(session, close)

    def unwatch(self, key: int) -> None:
        """The socket ended."""
        self._sockets.pop(key, None)

    def start(self) -> None:
        """Start checking every `check_s` seconds."""
        self._task = asyncio.create_task(self._run(), name="screenpop-session-guard")

    async def close(self) -> None:
        """Stop checking."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.check_s)
            try:
                await self.sweep()
            except SessionStoreError as err:  # keep the sockets: the store may come back
                log.warning("cannot check the sessions of open sockets: %s", err)
            except Exception:
                log.exception("session check failed")

    async def sweep(self) -> None:
        """Close every watched socket whose session is no longer live."""
        if not self._sockets:
            return
        now = time.time()
        watched = list(self._sockets.items())
        alive = await self.store.alive(sorted({w.session.id for _, w in watched if w.session.expires_at > now}))
        for key, w in watched:
            if w.session.id not in alive or w.session.expires_at <= now:
                await self._end(key, w)

    async def ended(self, *, sid: str | None = None, agent_id: str | None = None) -> None:
        """A session (or every session of an agent) ended here: close its sockets now."""
        for key, w in list(self._sockets.items()):
            if w.session.id == sid or w.session.agent_id == agent_id:
                await self._end(key, w)

    async def _end(self, key: int, w: _Watched) -> None:
        if self._sockets.pop(key, None) is None:
            return
        try:
            await w.close(SESSION_ENDED, SESSION_ENDED_REASON)
        except Exception as err:
            log.debug("closing a socket whose session ended failed: %s", err)
