"""Login throttling: failed logins per user and per client address, with an exponential back-off.

Built on the `limits` library (moving windows), in memory or in the bus's Redis (every instance counts the
same failures). Each key (the canonical user name; the client's address) has a ladder of limits: `n`
failures per minute, `n + 1` per 2 minutes, `n + 2` per 4 minutes ... `n + 7` per 128 minutes. The n-th
failure blocks for up to a minute, each further one doubles the wait. A blocked login is answered 429
with `Retry-After` before any password is hashed. A successful login clears the user's ladder (not the
address's: one address guessing many users stays throttled).
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

log = logging.getLogger("screenpop.throttle")

STEPS = 8  # windows of 1, 2, 4 ... 128 minutes


def _ladder(first: int) -> list[RateLimitItem]:
    return [RateLimitItemPerMinute(first + i, 2 ** i) for i in range(STEPS)]


def storage_for(bus_url: str, prefix: str) -> Storage:
    """The bus's Redis when it is redis:// or rediss:// (shared by the instances), else memory."""
    scheme = bus_url.partition("://")[0]
    if scheme in ("redis", "rediss"):
        return RedisStorage(f"async+{bus_url}", implementation="redispy", key_prefix=f"{prefix}.login")
    if scheme.startswith("redis"):
        log.warning("login throttling counts per instance: the bus URL's form (%s) is not one `limits` reads",
                    scheme)
    return MemoryStorage()


class ThrottleError(Exception):
    """The throttle's storage (Redis) cannot be reached: the login is answered 503, not let through."""


class LoginThrottle:
    """Counts failed logins; says how long a user or an address must wait."""

    def __init__(self, storage: Storage, per_user: int, per_address: int) -> None:
        self.storage = storage
        self._limiter = MovingWindowRateLimiter(storage)
        self._ladders = {"user": _ladder(per_user), "address": _ladder(per_address)}

    def _keys(self, user: str, address: str) -> list[tuple[str, str]]:
        return [("user", user[:64]), ("address", address[:64])]

    async def retry_after(self, user: str, address: str) -> int:
        """Seconds to wait before this user may try again from this address (0: now)."""
        try:
            return await self._retry_after(user, address)
        except Exception as err:
            raise ThrottleError(f"login throttling storage: {type(err).__name__}") from None

    async def _retry_after(self, user: str, address: str) -> int:
        wait = 0.0
        now = time.time()
        for kind, key in self._keys(user, address):
            for item in self._ladders[kind]:
                if not await self._limiter.test(item, kind, key):
                    stats = await self._limiter.get_window_stats(item, kind, key)
                    wait = max(wait, stats.reset_time - now)
        return math.ceil(wait) if wait > 0 else 0

    async def failed(self, user: str, address: str) -> None:
        """Count one failed login for the user and the address."""
        try:
            for kind, key in self._keys(user, address):
                for item in self._ladders[kind]:
                    await self._limiter.hit(item, kind, key)
        except Exception as err:
            raise ThrottleError(f"login throttling storage: {type(err).__name__}") from None

    async def succeeded(self, user: str) -> None:
        """The user logged in: their back-off starts again from nothing."""
        try:
            for item in self._ladders["user"]:
                await self._limiter.clear(item, "user", user[:64])
        except Exception as err:
            raise ThrottleError(f"login throttling storage: {type(err).__name__}") from None
