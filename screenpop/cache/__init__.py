"""Pick a cache backend by URL; see `screenpop.cache.base` for the contract, `policy` for freshness."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from screenpop.cache.base import CacheBackend, CacheError, Entry
from screenpop.cache.policy import Cached, CachePolicy, CacheStats, SectionCache
from screenpop.redisurl import SCHEMES as REDIS_SCHEMES

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

    `memory://` (the default) takes `max_entries`, `max_bytes`; Redis (`redis://`, `rediss://`,
    `redis+sentinel://`, `rediss+sentinel://`) takes `prefix`, `timeout`, `retry_after_s`.
    An unknown option raises TypeError.
    """
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from screenpop.cache.memory import MemoryCache

        return MemoryCache(**options)
    if scheme in REDIS_SCHEMES:
        from screenpop.cache.redis import RedisCache

        return RedisCache(url, **options)
    raise CacheError(f"unsupported cache URL scheme {scheme!r}; expected memory:// or one of Redis's: "
                     + ", ".join(f"{s}://" for s in REDIS_SCHEMES))
