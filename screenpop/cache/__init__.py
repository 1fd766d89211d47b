"""Pick a cache backend by URL; see `screenpop.cache.base` for the contract, `policy` for freshness."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from screenpop.cache.base import CacheBackend, CacheError, Entry
from screenpop.cache.policy import Cached, CachePolicy, CacheStats, SectionCache

__all__ = [
    "CacheBackend",
    "CacheError",
    "CachePolicy",
    "CacheStats",
    "Cached",
    "Entry",
    "SectionCache",
    "cache_from_url",
]


def cache_from_url(url: str, **options: Any) -> CacheBackend:
    """Build the backend named by the URL scheme; the backend's module is imported only here.

    `memory://` (the default) takes `max_entries`, `max_bytes`; `redis://` and `rediss://` take `prefix`,
    `timeout`, `retry_after_s`. An unknown option raises TypeError.
    """
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from screenpop.cache.memory import MemoryCache

        return MemoryCache(**options)
    if scheme in ("redis", "rediss"):
        from screenpop.cache.redis import RedisCache

        return RedisCache(url, **options)
    raise CacheError(f"unsupported cache URL scheme {scheme!r}; expected memory://, redis:// or rediss://")
