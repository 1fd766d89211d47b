"""The cache seam: where connector answers are kept between lookups.

A backend is a small key -> entry store with a time to live per key. It knows nothing about sections,
freshness or connectors: `screenpop.cache.policy.SectionCache` decides what is fresh, stale or gone.

    CacheBackend          connect / close / get / set / delete
      MemoryCache         memory://  in this process, bounded (entries and bytes), LRU eviction
      RedisCache          redis://, rediss://  shared by every instance, keys under a prefix

Errors:
    CacheError            the backend cannot be used at all: a bad URL, or a call before connect()
                          or after close(). Never raised for a server fault during get/set/delete:
                          a cache that is down behaves as an empty cache (get -> None, set skipped).
    TypeError/ValueError  `set` was given a value that is not JSON (nothing is stored).

Every entry crosses the backend as JSON text (`encode_entry` / `decode_entry`), in memory too, so both
backends accept and return exactly the same values, and a caller that mutates what `get` returned never
changes what is cached.
"""

from __future__ import annotations

import abc
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from screenpop.errors import CacheError  # re-exported: the errors are defined in one tree

__all__ = ["CacheBackend", "CacheError", "Entry", "RateLimitedLog", "check_ttl", "decode_entry", "encode_entry"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One cached answer: a JSON-compatible `value`, when it was stored, and whether it was empty."""

    value: Any
    stored_at: float
    """Unix time (seconds) when the answer was loaded; ages are measured from it."""
    negative: bool = False
    """True for an empty answer (None, [] or {}): "this number matches no customer"."""
    text: str | None = field(default=None, compare=False, repr=False)
    """`value` as compact JSON when the caller already has it (saves serialising it twice)."""


def encode_entry(entry: Entry) -> str:
    """The entry as compact JSON text; raises TypeError or ValueError if the value is not JSON."""
    if entry.text is not None:
        return f'{{"v":{entry.text},"t":{float(entry.stored_at)!r},"n":{"true" if entry.negative else "false"}}}'
    return json.dumps(
        {"v": entry.value, "t": entry.stored_at, "n": entry.negative},
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def decode_entry(text: str | bytes) -> Entry:
    """An entry from `encode_entry`'s text; raises CacheError if the text is not such an entry."""
    try:
        data = json.loads(text)
        stored_at = float(data["t"])
        return Entry(value=data["v"], stored_at=stored_at, negative=bool(data["n"]))
    except (ValueError, TypeError, KeyError) as exc:
        raise CacheError(f"expected a cache entry {{v, t, n}}, got unreadable data ({type(exc).__name__})") from None


class CacheBackend(abc.ABC):
    """A key -> Entry store with a time to live per key. Safe for many concurrent coroutines."""

    @abc.abstractmethod
    async def connect(self) -> None:
        """Get ready for use. Called once before any other call.

        A server that does not answer is not an error here (the cache then behaves as empty and the
        backend logs a warning); raises CacheError only when the backend cannot work at all.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections. Idempotent, never raises. Later get/set/delete raise CacheError."""

    @abc.abstractmethod
    async def get(self, key: str) -> Entry | None:
        """The entry stored under `key`, or None when there is none or its time to live has passed.

        Returns a new copy on every call: mutating it changes nothing in the cache. A server fault or
        unreadable stored data gives None (logged as a warning, rate-limited), never an exception.
        Raises CacheError before connect() or after close().
        """

    def peek(self, key: str) -> Entry | None:
        """The entry under `key` when this backend can read it without I/O (an in-process store), else None.

        None says nothing about the key: the entry may exist and be read by `get`. Same copy and expiry
        rules as `get`. This default reads nothing (a remote backend); raises CacheError before connect()
        or after close() in a backend that overrides it.
        """
        return None

    @abc.abstractmethod
    async def set(self, key: str, entry: Entry, ttl_s: float) -> None:
        """Store `entry` under `key` for `ttl_s` seconds (> 0), replacing any entry and its time to live.

        The value is copied (serialised) before this returns. Raises ValueError for ttl_s <= 0 and
        TypeError/ValueError when the value is not JSON; nothing is stored then. A server fault skips
        the write (logged as a warning, rate-limited), never an exception. Raises CacheError before
        connect() or after close().
        """

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the entry under `key`, if any. A server fault is logged (rate-limited), never raised.

        Raises CacheError before connect() or after close().
        """


def check_ttl(ttl_s: float) -> None:
    """Raise ValueError unless `ttl_s` is a positive number of seconds."""
    if not ttl_s > 0:
        raise ValueError(f"ttl_s must be more than 0 seconds, got {ttl_s!r}")


class RateLimitedLog:
    """Warnings at most once per `interval_s`; the next one says how many were left out meanwhile.

    A cache that is down fails on every lookup; one line per interval says so without flooding the log.
    """

    def __init__(
        self, logger: logging.Logger, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.logger, self.interval_s, self.clock = logger, interval_s, clock
        self.suppressed = 0
        self._last: float | None = None

    def warning(self, text: str, *args: object) -> None:
        """Log `text % args` as a warning unless one was logged less than `interval_s` ago."""
        now = self.clock()
        if self._last is not None and now - self._last < self.interval_s:
            self.suppressed += 1
            return
        if self.suppressed:
            text += " (%d similar warning(s) left out in the last %.0f s)"
            args = (*args, self.suppressed, now - self._last if self._last is not None else 0.0)
        self._last, self.suppressed = now, 0
        self.logger.warning(text, *args)
