"""Freshness rules over a cache backend: fresh, stale-while-revalidate, stale-if-error, negative, single-flight.

    age < ttl_s                                   fresh: served, no load
    ttl_s <= age < ttl_s + stale_s                stale: served at once, refreshed in the background
    otherwise (or no entry)                       miss: wait for the load, store it, serve it
      the load fails, age < ttl_s + stale_if_error_s    stale, with the error: served instead of failing
    empty answer (None, [] or {})                 negative: kept `negative_ttl_s`, fresh or gone, never stale

Loads are single-flight per SectionCache: concurrent fetches of one key share one loader call (the first
caller's loader) and await one shared future. A waiter waits at most its `timeout_s`, through a shield: its
cancellation or timeout never cancels the shared load, which runs until the longest waiter's budget is spent
(capped at `max_load_s`): a late answer still lands in the cache for the next call, and a load nobody waits
for is cancelled at that bound. Background refreshes are flights too.

Every caller gets its own copy of the value, so mutating it changes nothing shared: the first waiter of a
load gets the loaded object itself (nothing else holds it: the cache keeps JSON text taken before it was
handed out), every other waiter a JSON round trip.
Ages come from `clock` (unix seconds, injectable); load bounds use the event loop's clock.
The cache never fails a lookup for its own sake: backend faults are misses (see `screenpop.cache.base`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from screenpop.cache.base import CacheBackend, Entry, RateLimitedLog

__all__ = ["CachePolicy", "CacheStats", "Cached", "Loader", "SectionCache", "State", "is_empty"]

logger = logging.getLogger("screenpop.cache")

State = Literal["fresh", "stale", "miss"]
Loader = Callable[[], Awaitable[Any]]
_WEEK = 7 * 86400


class CachePolicy(BaseModel):
    """How long one connector's answers are served from the cache; all zero (the default) = no caching.

    The one cache-settings model: a connector's `cache:` section in the configuration file is read into it
    (`screenpop.config.ConnectorConfig.cache`), and `SectionCache.fetch` takes it as it is.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    ttl_s: float = Field(default=0, ge=0, le=_WEEK)
    """Seconds an answer with data is fresh. 0: answers with data are not cached."""
    stale_s: float = Field(default=0, ge=0, le=_WEEK)
    """Seconds after ttl_s during which the old answer is served at once while a refresh runs."""
    stale_if_error_s: float = Field(default=0, ge=0, le=_WEEK)
    """Seconds after ttl_s during which the old answer is served when the source fails or times out."""
    negative_ttl_s: float = Field(default=0, ge=0, le=86400)
    """Seconds an empty answer (None, [] or {}) is cached. 0: empty answers are not cached."""

    @property
    def reads(self) -> bool:
        """True when anything is cached at all (otherwise the backend is not even asked)."""
        return self.ttl_s > 0 or self.negative_ttl_s > 0

    @property
    def keep_s(self) -> float:
        """How long the backend keeps an answer with data: ttl_s plus the longer stale window."""
        return self.ttl_s + max(self.stale_s, self.stale_if_error_s)


@dataclass(slots=True)
class Cached:
    """What `SectionCache.fetch` serves."""

    value: Any
    state: State
    age_s: float = 0.0
    """Seconds since the value was loaded (0 for a miss)."""
    refresh: asyncio.Task[Cached] | None = None
    """For a stale-while-revalidate hit: resolves to the fresh value once stored, or raises the load's error."""
    error: Exception | None = None
    """For a stale-if-error answer: why the load failed (TimeoutError included)."""


@dataclass(slots=True)
class CacheStats:
    """Counters since start, for metrics and the health page."""

    hits: int = 0  # fresh answers from the cache
    stale_hits: int = 0  # stale answers served while a refresh runs
    misses: int = 0  # fetches that had to wait for a load
    errors_served_stale: int = 0  # failed loads answered with a stale value
    loads: int = 0  # loader calls (misses and refreshes, after single-flight)
    load_errors: int = 0  # loader calls that raised or ran past their bound
    joins: int = 0  # fetches that shared a load already running

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def is_empty(value: Any) -> bool:
    """True for the answers cached as negative: None, an empty list, an empty dict."""
    return value is None or (isinstance(value, list | dict) and not value)


@dataclass(eq=False, slots=True)
class _Flight:
    """One shared load: the future its waiters await, and the loop time at which the load is cut."""

    result: asyncio.Future[tuple[Any, str | None]]
    """The load's (value, JSON text), or its error; cancelled when the load is stopped by `close()`."""
    cap: float
    deadline: float
    task: asyncio.Task[None] | None = None
    timer: asyncio.TimerHandle | None = None  # cancels the load at `deadline` (moved by `extend`)
    expired: bool = False  # the timer fired: the load's cancellation means TimeoutError
    handed: bool = False  # the loaded object itself went to a waiter; the others get copies

    async def wait(self, timeout_s: float | None) -> tuple[Any, str | None]:
        """The load's (value, text), waiting at most `timeout_s` (TimeoutError). The wait is shielded:
        cancelling it or timing it out never cancels the load."""
        async with asyncio.timeout(timeout_s):
            return await asyncio.shield(self.result)

    def take(self, value: Any, text: str | None) -> Any:
        """The loaded value for one waiter: the object itself the first time, then private copies."""
        if not self.handed:
            self.handed = True
            return value
        return _copy(value, text)

    def extend(self, until: float) -> None:
        """Let the load run until `until` (never past `cap`) because a new waiter needs it that long."""
        new = min(self.cap, max(self.deadline, until))
        if new > self.deadline:
            self.deadline = new
            if self.timer is not None:
                self.timer.cancel()
                self.timer = asyncio.get_running_loop().call_at(new, self.expire)

    def expire(self) -> None:
        """The deadline passed: cancel the load; it ends with TimeoutError for its waiters."""
        self.expired = True
        if self.task is not None:
            self.task.cancel()


class SectionCache:
    """Serves connector answers through `backend` with the freshness rules above; one per connector.

    `clock`: unix seconds, used for entry ages (inject one in tests). `max_load_s`: no load, shared or
    background, runs longer than this. `name` (the connector's) appears in log lines. The backend
    belongs to the caller, who connects and closes it; `close()` here only stops running loads.
    """

    def __init__(
        self,
        backend: CacheBackend,
        *,
        clock: Callable[[], float] = time.time,
        max_load_s: float = 30.0,
        name: str = "",
    ) -> None:
        if not max_load_s > 0:
            raise ValueError(f"max_load_s must be more than 0 seconds, got {max_load_s!r}")
        self.backend, self.clock, self.max_load_s, self.name = backend, clock, max_load_s, name
        self.stats = CacheStats()
        self._flights: dict[str, _Flight] = {}
        self._refreshes: set[asyncio.Task[Cached]] = set()
        self._log = RateLimitedLog(logger)

    @property
    def in_flight(self) -> int:
        """How many loads are running now."""
        return len(self._flights)

    async def fetch(self, key: str, policy: CachePolicy, loader: Loader, *, timeout_s: float | None = None) -> Cached:
        """The value for `key`: from the cache when the policy allows, else from `loader()` (single-flight).

        `timeout_s` bounds this caller's wait for a load (TimeoutError, or a stale-if-error answer) and
        keeps the shared load alive at least that long. Raises what the load raised when no stale value
        may be served. Exceptions that are not `Exception` (cancellation) always propagate.
        """
        if not policy.reads:
            self.stats.misses += 1
            return await self._wait(key, policy, loader, timeout_s)
        entry = await self.backend.get(key)
        if entry is not None:
            age = max(0.0, self.clock() - entry.stored_at)
            if age < (policy.negative_ttl_s if entry.negative else policy.ttl_s):
                self.stats.hits += 1
                return Cached(entry.value, "fresh", age)
            if not entry.negative and age < policy.ttl_s + policy.stale_s:
                self.stats.stale_hits += 1
                return Cached(entry.value, "stale", age, refresh=self._refresh(key, policy, loader, timeout_s))
        self.stats.misses += 1
        try:
            return await self._wait(key, policy, loader, timeout_s)
        except Exception as exc:
            if entry is None or entry.negative:
                raise
            age = max(0.0, self.clock() - entry.stored_at)
            if age >= policy.ttl_s + policy.stale_if_error_s:
                raise
            self.stats.errors_served_stale += 1
            return Cached(entry.value, "stale", age, error=exc)

    def peek(self, key: str, policy: CachePolicy) -> Cached | None:
        """The fresh value for `key` when the backend can read it without I/O (`CacheBackend.peek`), else
        None: a stale, missing or remote entry is for `fetch`. A hit counts as one, like `fetch`'s."""
        if not policy.reads:
            return None
        entry = self.backend.peek(key)
        if entry is None:
            return None
        age = max(0.0, self.clock() - entry.stored_at)
        if age >= (policy.negative_ttl_s if entry.negative else policy.ttl_s):
            return None
        self.stats.hits += 1
        return Cached(entry.value, "fresh", age)

    async def close(self) -> None:
        """Cancel every running load and background refresh and wait for them. Idempotent."""
        flights, self._flights = list(self._flights.values()), {}
        tasks = [f.task for f in flights if f.task is not None] + list(self._refreshes)
        for task in tasks:
            task.cancel()
        for flight in flights:
            flight.result.cancel()  # its waiters end with CancelledError (a no-op on a settled flight)
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _wait(self, key: str, policy: CachePolicy, loader: Loader, timeout_s: float | None) -> Cached:
        """Join (or start) the key's load and wait for it, at most `timeout_s`; never cancels the load."""
        flight = self._join(key, policy, loader, timeout_s)
        value, text = await flight.wait(timeout_s)
        return Cached(flight.take(value, text), "miss", 0.0)

    def _refresh(self, key: str, policy: CachePolicy, loader: Loader, timeout_s: float | None) -> asyncio.Task[Cached]:
        flight = self._join(key, policy, loader, timeout_s)
        task = asyncio.create_task(self._refreshed(flight), name="screenpop.cache refresh")
        self._refreshes.add(task)
        task.add_done_callback(self._refresh_done)
        return task

    async def _refreshed(self, flight: _Flight) -> Cached:
        value, text = await asyncio.shield(flight.result)
        if flight.task is not None:
            await asyncio.shield(flight.task)  # resolve once the fresh value is stored too
        return Cached(flight.take(value, text), "fresh", 0.0)

    def _refresh_done(self, task: asyncio.Task[Cached]) -> None:
        self._refreshes.discard(task)
        if not task.cancelled():
            task.exception()  # the caller may never await it: retrieved here, so asyncio does not log it

    def _join(self, key: str, policy: CachePolicy, loader: Loader, timeout_s: float | None) -> _Flight:
        loop = asyncio.get_running_loop()
        now = loop.time()
        until = now + (self.max_load_s if timeout_s is None else max(0.0, timeout_s))
        flight = self._flights.get(key)
        if flight is not None:
            self.stats.joins += 1
            flight.extend(until)
            return flight
        result: asyncio.Future[tuple[Any, str | None]] = loop.create_future()
        flight = _Flight(result, cap=now + self.max_load_s, deadline=min(now + self.max_load_s, until))
        self._flights[key] = flight
        flight.task = loop.create_task(self._load(key, policy, loader, flight), name="screenpop.cache load")
        flight.task.add_done_callback(functools.partial(self._forget, key, flight))
        flight.timer = loop.call_at(flight.deadline, flight.expire)
        return flight

    async def _load(self, key: str, policy: CachePolicy, loader: Loader, flight: _Flight) -> None:
        """Run the loader within the flight's deadline, set the shared result, then store it."""
        self.stats.loads += 1
        try:
            try:
                value = await loader()
            except asyncio.CancelledError:
                if not flight.expired:
                    raise  # close(), or the process stops
                raise TimeoutError from None  # the flight's deadline passed (a plain timer: one per load)
            finally:  # the load is over: its bound no longer applies (nor any later extension)
                if flight.timer is not None:
                    flight.timer.cancel()
                    flight.timer = None
        except Exception as exc:  # TimeoutError included: the deadline passed
            self.stats.load_errors += 1
            flight.result.set_exception(exc)
            flight.result.exception()  # retrieved: a load nobody waits for must not log "never retrieved"
            self._forget(key, flight)  # in the same step: nobody can join a failed load
            return
        text = self._dumps(value)
        flight.result.set_result((value, text))
        if text is not None:
            await self._store(key, policy, value, text)
        self._forget(key, flight)  # in the step that stored it: a later fetch finds the stored answer

    async def _store(self, key: str, policy: CachePolicy, value: Any, text: str | None = None) -> None:
        negative = is_empty(value)
        ttl_s = policy.negative_ttl_s if negative else (policy.keep_s if policy.ttl_s > 0 else 0.0)
        try:
            if ttl_s > 0:
                await self.backend.set(key, Entry(value, self.clock(), negative, text), ttl_s)
            elif policy.reads:  # not cacheable now: an older answer must not be served again
                await self.backend.delete(key)
        except Exception as exc:
            self._log.warning("cache %s: could not store an answer: %s: %s", self.name, type(exc).__name__, exc)

    def _forget(self, key: str, flight: _Flight, _task: asyncio.Task[None] | None = None) -> None:
        """Drop the flight from the registry (once its result is out); a load stopped before it set its
        result (cancelled by `close()` or the process stopping) cancels its waiters; one that its deadline
        stopped before it started fails them with TimeoutError."""
        if self._flights.get(key) is flight:
            del self._flights[key]
        if flight.result.done():
            return
        if flight.expired:  # cancelled by its deadline before it even started
            flight.result.set_exception(TimeoutError())
            flight.result.exception()  # retrieved: nobody may be waiting any more
        else:
            flight.result.cancel()

    def _dumps(self, value: Any) -> str | None:
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            self._log.warning("cache %s: the answer is not JSON (%s), so it is not cached", self.name, exc)
            return None


def _copy(value: Any, text: str | None) -> Any:
    """A private copy of a loaded value (the value itself when it could not be serialised)."""
    return value if text is None else json.loads(text)
