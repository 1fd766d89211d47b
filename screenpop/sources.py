"""A configured source: one connector with its guards (breaker, bulkhead, retries, cache) and statistics.

`Source.fetch(query, deadline)` always returns a Section: every outcome of the connector, including a
timeout, a failure, a refusal by the breaker or the bulkhead, becomes the section's status. The optional
`refresh` of the result is the background revalidation of a stale cached value.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from connectors.base import Connector, ConnectorError
from screenpop.cache import CachePolicy, SectionCache
from screenpop.config import ConnectorConfig
from screenpop.models import LookupQuery, Section, SectionStatus
from screenpop.resilience import Breaker, Bulkhead, Stats

log = logging.getLogger("screenpop.sources")

Observer = Callable[["Source", Section], None]


def fingerprint(config: ConnectorConfig) -> str:
    """Changes whenever the connector's settings change, so a cached value never outlives an edit."""
    raw = json.dumps(config.model_dump(mode="json"), sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


def _empty(data: Any) -> bool:
    return data is None or data == [] or data == {}


@dataclass
class Fetched:
    """A settled section, and the background refresh of a stale one (resolves to the fresh Section)."""

    section: Section
    refresh: Awaitable[Section] | None = None


@dataclass
class Source:
    """A configured connector and the guards around it."""

    config: ConnectorConfig
    connector: Connector
    cache: SectionCache | None = None  # None: no caching
    observer: Observer | None = None  # called with every settled section (metrics)
    breaker: Breaker = field(init=False)
    bulkhead: Bulkhead = field(init=False)
    stats: Stats = field(default_factory=Stats, init=False)
    key_prefix: str = field(init=False)
    policy: CachePolicy | None = field(init=False)  # None when nothing is cached
    _pending: Section = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.breaker = Breaker(self.config.breaker.failures, self.config.breaker.cooldown_s)
        self.bulkhead = Bulkhead(self.config.max_in_flight)
        self.key_prefix = f"{self.config.name}:{fingerprint(self.config)}"
        self.policy = self._policy()  # a Source is rebuilt whenever its config changes
        view = self.config.view or type(self.connector).default_view(self.config.role)
        self._pending = Section(name=self.config.section_name, title=self.config.section_title, source=self.name,
                                view=view)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def timeout_s(self) -> float:
        return self.config.timeout_ms / 1000

    def pending(self) -> Section:
        """This source's section before it settles."""
        return self._pending.model_copy()  # a shallow copy of a validated template: no validation again

    async def fetch(self, query: LookupQuery, deadline: float) -> Fetched:
        """One lookup against this source, bounded by its timeout and the card's deadline."""
        start = time.perf_counter()
        out: dict[str, Any] = {}  # the settled section's fields, applied to a copy of `pending()` once
        refresh = None
        policy = self.policy
        try:
            if policy is not None and self.cache is not None:
                key = self._key(query)
                budget = min(self.timeout_s, deadline - time.monotonic())
                if budget <= 0:
                    raise TimeoutError
                # the cache applies the budget itself, so a timeout can still be answered with a stale value
                loader = functools.partial(self._guarded, query, deadline)
                cached = await self.cache.fetch(key, policy, loader, timeout_s=budget)
                data = cached.value
                if cached.state != "miss":
                    out["cached"], out["age_s"] = True, round(cached.age_s, 1)
                self.stats.cache[cached.state] += 1
                if cached.state == "stale":
                    out["status"], out["data"] = SectionStatus.STALE, data
                    if cached.error is not None:
                        out["reason"] = "source failed; showing the last known value"
                    elif cached.refresh is not None:
                        refresh = self._after_refresh(cached.refresh, deadline)
                    return Fetched(self._done(out, start), refresh)
            else:
                data = await self._bounded(self._guarded(query, deadline), deadline)
        except TimeoutError:
            out["status"], out["reason"] = SectionStatus.TIMEOUT, "no answer in time"
        except _Refused as err:
            out["status"], out["reason"] = SectionStatus.UNAVAILABLE, str(err)
        except ConnectorError as err:
            out["status"], out["reason"] = SectionStatus.ERROR, str(err)[:200] or "source failed"
        except Exception:  # a connector bug must not sink the card
            log.exception("connector %s failed", self.name)
            out["status"], out["reason"] = SectionStatus.ERROR, "connector failed unexpectedly"
        else:
            out["status"] = SectionStatus.EMPTY if _empty(data) else SectionStatus.OK
            out["data"] = None if _empty(data) else data
        return Fetched(self._done(out, start), refresh)

    def at_hand(self, query: LookupQuery) -> Section | None:
        """This source's section when the cache holds a fresh answer it reads without I/O (an in-process
        cache), counted and observed like `fetch`'s; None otherwise (then `fetch` it)."""
        if self.policy is None or self.cache is None:
            return None
        start = time.perf_counter()
        cached = self.cache.peek(self._key(query), self.policy)
        if cached is None:
            return None
        self.stats.cache["fresh"] += 1
        data = cached.value
        empty = _empty(data)
        return self._done({"status": SectionStatus.EMPTY if empty else SectionStatus.OK,
                           "data": None if empty else data, "cached": True, "age_s": round(cached.age_s, 1)}, start)

    def _key(self, query: LookupQuery) -> str:
        return f"{self.key_prefix}:{query.customer_id or query.phone}"

    def _done(self, out: dict[str, Any], start: float) -> Section:
        """The settled section (`out` over the pending one), counted and observed."""
        out["latency_ms"] = round((time.perf_counter() - start) * 1000, 1)
        section = self._pending.model_copy(update=out)  # no validation: every value above is of its type
        self.stats.record(section.status.value, section.latency_ms)
        if self.observer is not None:
            self.observer(self, section)
        return section

    def _policy(self) -> CachePolicy | None:
        policy = self.config.cache  # a screenpop.cache.CachePolicy: the config's `cache:` section as it is
        return policy if policy.reads else None

    async def _bounded(self, aw: Awaitable[Any], deadline: float) -> Any:
        budget = min(self.timeout_s, deadline - time.monotonic())
        if budget <= 0:
            raise TimeoutError
        async with asyncio.timeout(budget):
            return await aw

    async def _guarded(self, query: LookupQuery, deadline: float) -> Any:
        """The connector call behind the breaker and the bulkhead, with retries inside the deadline."""
        if not self.breaker.allow():
            raise _Refused(f"source skipped after {self.breaker.failures} failures; "
                           f"next try in {self.breaker.retry_in_s():.0f} s")
        if not self.bulkhead.try_acquire():
            self.breaker.release()
            raise _Refused(f"too many requests in flight to this source (limit {self.bulkhead.limit})")
        try:
            attempt = 0
            while True:
                t0 = time.monotonic()
                try:
                    data = await self.connector.fetch(query)
                except (ConnectorError, TimeoutError):
                    took = time.monotonic() - t0
                    left = deadline - time.monotonic()
                    if attempt < self.config.retries and left > max(took, 0.05):
                        attempt += 1
                        continue
                    self.breaker.failure()
                    raise
                self.breaker.success()
                return data
        except asyncio.CancelledError:  # our timeout: the source did not answer in time
            self.breaker.failure()
            raise
        finally:
            self.bulkhead.release()

    async def _after_refresh(self, refresh: Awaitable[Any], deadline: float) -> Section:
        start = time.perf_counter()
        cached = await refresh
        empty = _empty(cached.value)
        return self._done({"status": SectionStatus.EMPTY if empty else SectionStatus.OK,
                           "data": None if empty else cached.value}, start)


class _Refused(Exception):
    """The breaker or the bulkhead refused the request: the section is `unavailable`."""
