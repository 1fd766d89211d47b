"""CTI failover: a CTI adapter runs only while its lease is held (take, renew, lose, release), on an injected clock."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncIterator, Callable
from typing import Self

import pytest

from screenpop.ctilink import CtiLink, supervise_cti
from screenpop.lease import LeaseError, LeaseKeeper, MemoryLeaseStore, lease_key, pbx_name
from screenpop.models import CallEvent, EventKind
from telephony.base import CtiAdapter

TTL = 9.0
KEY = "t.cti-lease.x"


class Clock:
    """Virtual time: `sleep(s)` waits until the test moves the clock past now + s (`advance`, `run_until`)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self._seq += 1
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, self._seq, future))
        await future

    async def run_until(self, predicate: Callable[[], object], within_s: float) -> None:
        """Wake the sleepers in time order until `predicate()` holds; fail when `within_s` virtual seconds pass."""
        limit = self.now + within_s
        for _ in range(10_000):
            await turns()
            if predicate():
                return
            if not self._sleepers or self._sleepers[0][0] > limit:
                break
            wake, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, wake)
            if not future.done():
                future.set_result(None)
        raise AssertionError(f"not within {within_s} virtual seconds")

    async def advance(self, seconds: float) -> None:
        """Move the clock by `seconds`, waking every sleeper due meanwhile, in order."""
        limit = self.now + seconds
        while self._sleepers and self._sleepers[0][0] <= limit:
            wake, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, wake)
            if not future.done():
                future.set_result(None)
            await turns()
        self.now = limit
        await turns()


class FlakyStore(MemoryLeaseStore):
    """A memory store whose calls fail while `down` is set, as an unreachable Redis would."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.down = False
        self.renewals = 0

    async def renew(self, key: str, owner: str, ttl_s: float) -> bool:
        if self.down:
            raise LeaseError("lease store 127.0.0.1:6379: renew failed: connection refused")
        self.renewals += 1
        return await super().renew(key, owner, ttl_s)

    async def release(self, key: str, owner: str) -> bool:
        if self.down:
            raise LeaseError("lease store 127.0.0.1:6379: release failed: connection refused")
        return await super().release(key, owner)

    async def take(self, key: str, owner: str, ttl_s: float) -> bool:
        if self.down:
            raise LeaseError("lease store 127.0.0.1:6379: take failed: connection refused")
        return await super().take(key, owner, ttl_s)


class Pbx(CtiAdapter):
    """An adapter fed by the test: `feed` puts an event; every adapter built is recorded with its state."""

    name = "pbx"

    def __init__(self) -> None:
        self.queue: asyncio.Queue[CallEvent] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.running = asyncio.Event()

    @classmethod
    def from_url(cls, url: str) -> Self:  # pragma: no cover - built by the test's factory
        return cls()

    async def events(self) -> AsyncIterator[CallEvent]:
        self.running.set()
        while not self.closed.is_set():
            get = asyncio.ensure_future(self.queue.get())
            closed = asyncio.ensure_future(self.closed.wait())
            done, _ = await asyncio.wait({get, closed}, return_when=asyncio.FIRST_COMPLETED)
            for pending in (get, closed):
                pending.cancel()
            if get in done and not get.cancelled():
                yield get.result()

    async def close(self) -> None:
        self.closed.set()


def event(n: int) -> CallEvent:
    return CallEvent(call_id=f"c{n}", event=EventKind.RINGING, caller="+14155550100", agents=["alice"])


class Rig:
    """One instance's link over a shared store, with the events it handled."""

    def __init__(self, store: MemoryLeaseStore, clock: Clock, owner: str = "me") -> None:
        self.adapters: list[Pbx] = []
        self.handled: list[str] = []
        self.keeper = LeaseKeeper(store, KEY, owner, TTL, retry_s=1.0, clock=clock)
        self.link = CtiLink("ami://pbx:5038", self._make, self.keeper)
        self.task: asyncio.Task[None] | None = None
        self.clock = clock

    def _make(self) -> Pbx:
        self.adapters.append(Pbx())
        return self.adapters[-1]

    async def handle(self, e: CallEvent) -> None:
        self.handled.append(e.call_id)

    def start(self) -> None:
        self.task = asyncio.create_task(supervise_cti(self.link, self.handle, sleep=self.clock.sleep))

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def turns(n: int = 20) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def until(predicate: Callable[[], object]) -> None:
    """Let the loop turn until `predicate()` holds (bounded), without moving the clock."""
    for _ in range(10_000):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


@pytest.fixture
def clock() -> Clock:
    """A fresh fake clock."""
    return Clock()


async def test_the_holder_runs_the_adapter_and_renews_every_third_of_the_ttl(clock: Clock) -> None:
    """The lease is taken, the adapter runs and its events are handled; renewals come every ttl / 3."""
    store = FlakyStore(clock)
    rig = Rig(store, clock)
    rig.start()
    await until(lambda: rig.adapters and rig.adapters[0].running.is_set())
    assert rig.link.state == "held"
    rig.adapters[0].queue.put_nowait(event(1))
    await until(lambda: rig.handled == ["c1"])
    await clock.advance(TTL)  # three renewals, one every ttl / 3
    assert store.renewals == 3 and rig.link.state == "held" and len(rig.adapters) == 1
    await rig.stop()


async def test_a_standby_takes_over_only_after_the_holder_released(clock: Clock) -> None:
    """Two instances on one store: one runs the adapter; when it shuts down (releases), the other takes over."""
    store = MemoryLeaseStore(clock)
    a, b = Rig(store, clock, "a"), Rig(store, clock, "b")
    a.start()
    await until(lambda: a.link.state == "held")
    b.start()
    await clock.advance(3 * TTL)  # a renews; b keeps trying
    assert b.adapters == [] and b.link.state == "standby" and a.link.state == "held"
    await a.stop()
    assert a.adapters[0].closed.is_set() and await store.owner(KEY) is None  # closed, then released
    await clock.run_until(lambda: b.link.state == "held", within_s=1.0)  # b's next try, one retry_s later
    assert await store.owner(KEY) == "b"
    await b.stop()


async def test_a_dead_holders_lease_is_taken_after_it_expires(clock: Clock) -> None:
    """The holder vanishes without releasing (SIGKILL): the standby takes over once the TTL has passed."""
    store = MemoryLeaseStore(clock)
    assert await store.take(KEY, "a", TTL)  # a took it, then was killed: nothing renews or releases it
    died_at = clock.now
    b = Rig(store, clock, "b")
    b.start()
    await clock.run_until(lambda: b.link.state == "held", within_s=TTL + 1.0)
    assert died_at + TTL <= clock.now <= died_at + TTL + 1.0  # expiry, then b's next try (retry_s = 1)
    await b.stop()


async def test_a_renewal_that_finds_another_owner_stops_the_adapter_at_once(clock: Clock) -> None:
    """Another owner holds the lease at renewal time: the adapter is closed, no later event is handled."""
    store = MemoryLeaseStore(clock)
    rig = Rig(store, clock)
    rig.start()
    await until(lambda: rig.adapters and rig.adapters[0].running.is_set())
    store._leases[KEY] = ("thief", clock.now + 100)  # the store gave it to another owner
    await clock.run_until(lambda: rig.adapters[0].closed.is_set(), within_s=TTL / 3)  # at the next renewal
    rig.adapters[0].queue.put_nowait(event(2))
    await turns()
    assert rig.handled == [] and rig.link.state == "standby" and await store.owner(KEY) == "thief"
    await rig.stop()


async def test_when_renewals_fail_the_holder_stops_a_margin_before_the_lease_expires(clock: Clock) -> None:
    """The store unreachable: the holder retries, then stops at valid_until, before the store's expiry."""
    store = FlakyStore(clock)
    rig = Rig(store, clock)
    rig.start()
    await until(lambda: rig.adapters and rig.adapters[0].running.is_set())
    taken_at = rig.keeper.renewed_at
    store.down = True
    await clock.run_until(lambda: rig.adapters[0].closed.is_set(), within_s=TTL)
    stopped_at, expires_at = clock.now, store._leases[KEY][1]
    assert stopped_at <= taken_at + TTL - rig.keeper.margin_s < expires_at
    rig.adapters[0].queue.put_nowait(event(3))
    await turns()
    assert rig.handled == [] and rig.link.state == "standby"
    store.down = False  # the store is back: the instance takes the lease again with a fresh adapter
    await clock.run_until(lambda: len(rig.adapters) == 2 and rig.link.state == "held", within_s=TTL)
    await rig.stop()


async def test_no_event_is_handed_on_past_valid_until(clock: Clock) -> None:
    """An event read after the holder's own deadline (its renewal not back yet) is dropped, not handled."""
    store = MemoryLeaseStore(clock)
    rig = Rig(store, clock)
    rig.start()
    await until(lambda: rig.adapters and rig.adapters[0].running.is_set())
    clock.now = rig.keeper.valid_until  # time passed and the keeper has not run yet
    rig.adapters[0].queue.put_nowait(event(4))
    await turns()
    assert rig.handled == []
    await rig.stop()


def test_the_keeper_refuses_a_margin_that_leaves_no_room_for_a_renewal() -> None:
    """margin >= ttl - ttl/3 would stop the holder before its first renewal: refused."""
    with pytest.raises(ValueError, match="margin"):
        LeaseKeeper(MemoryLeaseStore(), KEY, "me", 9.0, margin_s=6.0)


def test_the_lease_key_and_name_leave_the_secret_out() -> None:
    """The key hashes scheme, user, host and port (not the secret, not the options); the name shows no user."""
    a = lease_key("sp", "ami://screenpop:s3cret@pbx.example:5038")
    assert a == lease_key("sp", "ami://screenpop:other@PBX.example:5038?ping=5")
    assert a != lease_key("sp", "ami://screenpop:s3cret@pbx2.example:5038") and a.startswith("sp.cti-lease.")
    assert "s3cret" not in a
    assert pbx_name("ami://screenpop:s3cret@pbx.example:5038") == "ami://pbx.example:5038"
