"""The in-process cache (`memory://`): the default backend, one per instance, nothing shared.

Entries are kept as their JSON text (see `screenpop.cache.base`), which makes every `get` a fresh copy
and gives an exact size to bound; a copy by `json.loads` is cheaper than a deep copy (measured in
docs/decisions/0002-section-cache.md).

Bounds: at most `max_entries` entries and `max_bytes` characters of JSON text. Past either bound the least
recently used entries are evicted (`get` and `set` both count as use). An entry larger than `max_bytes`
on its own is not stored. Expired entries are dropped when read, or evicted like any other.
All operations are O(1) and never wait: nothing here blocks the event loop.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from screenpop.cache.base import CacheBackend, CacheError, Entry, check_ttl, decode_entry, encode_entry

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_ENTRIES", "MemoryCache"]

DEFAULT_MAX_ENTRIES = 50_000
DEFAULT_MAX_BYTES = 128 * 1024 * 1024


class MemoryCache(CacheBackend):
    """A bounded LRU of JSON texts with a time to live per key; `clock` (monotonic seconds) is injectable."""

    def __init__(
        self,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError(f"max_entries and max_bytes must be at least 1, got {max_entries!r}, {max_bytes!r}")
        self.max_entries, self.max_bytes, self.clock = max_entries, max_bytes, clock
        self.evictions = 0
        """How many live entries were dropped to stay within the bounds."""
        # key -> JSON text, least recently used first; key -> when it expires. Two maps of plain strings and
        # floats rather than one of tuples: an entry then holds nothing the garbage collector must walk.
        self._data: OrderedDict[str, str] = OrderedDict()
        self._expires: dict[str, float] = {}
        self._bytes = 0
        self._connected = False

    def __repr__(self) -> str:
        state = "connected" if self._connected else "not connected"
        return f"<MemoryCache {state}, {len(self._data)}/{self.max_entries} entries, {self._bytes} bytes>"

    def __len__(self) -> int:
        """How many entries are held now, expired ones not yet dropped included."""
        return len(self._data)

    @property
    def size_bytes(self) -> int:
        """The characters of JSON text held now."""
        return self._bytes

    async def connect(self) -> None:
        """Mark the cache open; nothing can fail."""
        self._connected = True

    async def close(self) -> None:
        """Drop every entry and refuse further use. Idempotent."""
        self._connected = False
        self._data.clear()
        self._expires.clear()
        self._bytes = 0

    async def get(self, key: str) -> Entry | None:
        """See `CacheBackend.get`."""
        return self.peek(key)

    def peek(self, key: str) -> Entry | None:
        """See `CacheBackend.peek`: in memory every read is at hand, so this is `get` without the await."""
        self._check("get")
        text = self._data.get(key)
        if text is None:
            return None
        if self._expires[key] <= self.clock():
            self._drop(key)
            return None
        self._data.move_to_end(key)
        return decode_entry(text)

    async def set(self, key: str, entry: Entry, ttl_s: float) -> None:
        """See `CacheBackend.set`."""
        self._check("set")
        check_ttl(ttl_s)
        text = encode_entry(entry)
        self._drop(key)
        if len(text) > self.max_bytes:
            return
        self._data[key] = text
        self._expires[key] = self.clock() + ttl_s
        self._bytes += len(text)
        while len(self._data) > self.max_entries or self._bytes > self.max_bytes:
            oldest = next(iter(self._data))
            self._drop(oldest)
            self.evictions += 1

    async def delete(self, key: str) -> None:
        """See `CacheBackend.delete`."""
        self._check("delete")
        self._drop(key)

    def _drop(self, key: str) -> None:
        text = self._data.pop(key, None)
        if text is not None:
            del self._expires[key]
            self._bytes -= len(text)

    def _check(self, action: str) -> None:
        if not self._connected:
            raise CacheError(f"cannot {action}: the memory cache is not connected (call connect() first)")
