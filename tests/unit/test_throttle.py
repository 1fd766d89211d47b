"""Login throttling: the back-off doubles with each further failure; a storage that is away is an error."""

from __future__ import annotations

import pytest
from limits.aio.storage import MemoryStorage, RedisStorage

from screenpop.throttle import LoginThrottle, ThrottleError
from tests.conftest import free_port


async def test_each_failure_past_the_limit_doubles_the_wait() -> None:
    """Five failures block for up to a minute, a sixth for up to two, a seventh for up to four."""
    t = LoginThrottle(MemoryStorage(), per_user=5, per_address=1000)
    for _ in range(4):
        await t.failed("alice", "10.0.0.1")
    assert await t.retry_after("alice", "10.0.0.1") == 0
    waits = []
    for _ in range(3):
        await t.failed("alice", "10.0.0.1")
        waits.append(await t.retry_after("alice", "10.0.0.1"))
    assert 0 < waits[0] <= 60 < waits[1] <= 120 < waits[2] <= 240
    assert await t.retry_after("bob", "10.0.0.2") == 0
    await t.succeeded("alice")
    assert await t.retry_after("alice", "10.0.0.2") == 0


async def test_an_unreachable_storage_is_an_error_not_a_pass() -> None:
    """With Redis away, a login is not let through unthrottled: ThrottleError (answered 503)."""
    t = LoginThrottle(RedisStorage(f"async+redis://127.0.0.1:{free_port()}/0", implementation="redispy"), 5, 20)
    with pytest.raises(ThrottleError):
        await t.retry_after("alice", "10.0.0.1")
