"""Pick a call-store backend by URL; see `screenpop.callstore.base` for the contract, `machine` for the rules."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from screenpop.callstore.base import CallStore, CallStoreError, Step
from screenpop.callstore.machine import CallRecord, Effect, Outcome
from screenpop.redisurl import SCHEMES as REDIS_SCHEMES

__all__ = ["CallRecord", "CallStore", "CallStoreError", "Effect", "Outcome", "Step", "callstore_from_url"]


def callstore_from_url(url: str, **options: Any) -> CallStore:
    """Build the backend named by the URL scheme; its module is imported only here.

    Both take `ttl_s`; `memory://` also `max_calls`, `clock`; the Redis forms (`redis://`, `rediss://`,
    `redis+sentinel://`: screenpop.redisurl) also `prefix`, `timeout`, `attempts`, `channel`, `instance`,
    `presence_s`, `clock` (unix seconds)."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from screenpop.callstore.memory import MemoryCallStore

        return MemoryCallStore(**options)
    if scheme in REDIS_SCHEMES:
        from screenpop.callstore.redis import RedisCallStore

        return RedisCallStore(url, **options)
    raise CallStoreError(f"unsupported call store URL scheme {scheme!r}; expected memory:// or "
                         + ", ".join(f"{s}://" for s in REDIS_SCHEMES))
