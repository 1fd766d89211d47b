"""Pick a bus backend by URL; see `screenpop.bus.base` for the contract."""

from __future__ import annotations

from urllib.parse import urlsplit

from screenpop.bus.base import Bus, BusError, Subscription
from screenpop.redisurl import SCHEMES as REDIS_SCHEMES

__all__ = ["Bus", "BusError", "Subscription", "bus_from_url"]


def bus_from_url(url: str) -> Bus:
    """Build the backend named by the URL scheme; the backend's module is imported only here."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from screenpop.bus.memory import MemoryBus

        return MemoryBus()
    if scheme in REDIS_SCHEMES:
        from screenpop.bus.redis import RedisBus

        return RedisBus(url)
    raise BusError(f"unsupported bus URL scheme {scheme!r}; expected memory:// or one of Redis's: "
                   + ", ".join(f"{s}://" for s in REDIS_SCHEMES))
