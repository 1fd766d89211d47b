"""Contract suite for the call-store seam: the same tests run on every backend (memory://, redis://)."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from screenpop.callstore import CallStore, CallStoreError, callstore_from_url
from screenpop.callstore.machine import (
    CallRecord,
    Change,
    Event,
    Outcome,
    Settle,
    Sweep,
    Wrapped,
    new_record,
    transition,
)
from screenpop.models import Caller, Card, EventKind, Section, SectionStatus
from screenpop.redisurl import parse_redis_url

NOW = 1_700_000_000.0
TTL = 120


@pytest.fixture(params=["memory", "redis"])
def store_url(request: pytest.FixtureRequest) -> str:
    """The URL of each backend; the redis one skips (or fails in CI) without a server."""
    return "memory://" if request.param == "memory" else request.getfixturevalue("redis_url")


@pytest.fixture
async def make_store(store_url: str) -> AsyncIterator[Callable[[], Any]]:
    """Connected stores of one backend on one shared space (a fresh key prefix): each is one "instance"
    (the memory backend, being one process's, hands out the same store every time)."""
    prefix = f"test-calls-{uuid.uuid4().hex[:10]}"
    opened: list[CallStore] = []

    async def make() -> CallStore:
        if store_url.startswith("memory") and opened:
            return opened[0]
        options: dict[str, Any] = {"ttl_s": TTL} if store_url.startswith("memory") else {"ttl_s": TTL,
                                                                                         "prefix": prefix}
        store = callstore_from_url(store_url, **options)
        await store.connect()
        opened.append(store)
        return store

    yield make
    for s in opened:
        await s.close()


@pytest.fixture
async def store(make_store: Callable[[], Any]) -> CallStore:
    """One connected store."""
    return await make_store()


def card(call_id: str, sections: tuple[str, ...] = ("customer", "balance")) -> Card:
    return Card(call_id=call_id, caller=Caller(raw="+14155550100", e164="+14155550100"),
                sections=[Section(name=n) for n in sections])


def step(call_id: str, change: Change, now: float = NOW) -> Callable[[CallRecord | None], Outcome]:
    """The registry's step, reduced: a new call's record from `card`, then the transition."""

    def run(record: CallRecord | None) -> Outcome:
        created = record is None and not (isinstance(change, Event) and change.kind is EventKind.ENDED)
        if created:
            record = new_record(card(call_id))
        out = transition(call_id, record, change, now)
        out.changed = out.changed or created
        return out

    return run


def ev(kind: str, *agents: str, at: float | None = None, token: str = "t1") -> Event:
    return Event(EventKind(kind), agents, at=at, token=token)


async def do(store: CallStore, call_id: str, change: Change, now: float = NOW) -> Outcome:
    return await store.apply(call_id, step(call_id, change, now))


def kinds(out: Outcome) -> list[tuple[str, tuple[str, ...]]]:
    return [(e.kind, e.to) for e in out.effects]


async def test_a_new_call_is_stored_with_its_ringing_agents_and_their_index(store: CallStore) -> None:
    """ringing stores the record, says to ring both agents, and each agent's active cards list it, in order."""
    out = await do(store, "c1", ev("ringing", "alice", "bob"))
    assert kinds(out) == [("ringing", ("alice", "bob"))] and out.start == "fresh"
    await do(store, "c2", ev("ringing", "alice"), NOW + 1)
    assert [c.call_id for c in await store.active("alice")] == ["c1", "c2"]
    assert [c.call_id for c in await store.active("bob")] == ["c1"]
    stored = await store.get("c1")
    assert stored is not None and stored.ringing == ["alice", "bob"] and stored.lookup == "t1"


async def test_the_same_event_twice_changes_nothing(store: CallStore) -> None:
    """A repeated event with `at` (and a repeated ringing without) is not applied again."""
    assert kinds(await do(store, "c1", ev("ringing", "alice", at=NOW))) == [("ringing", ("alice",))]
    again = await do(store, "c1", ev("ringing", "alice", at=NOW))
    assert not again.changed and again.effects == []
    assert (await do(store, "c1", ev("withdrawn", "alice", at=NOW + 1))).changed
    late_copy = await do(store, "c1", ev("ringing", "alice", at=NOW))  # the first one, delivered once more
    assert not late_copy.changed and await store.active("alice") == []


async def test_an_event_older_than_the_last_transition_changes_nothing(store: CallStore) -> None:
    """answered at t=10 then a ringing at t=5 for bob: bob gets nothing; an older ended still ends."""
    await do(store, "c1", ev("ringing", "alice", at=NOW + 1))
    await do(store, "c1", ev("answered", "alice", at=NOW + 10))
    old = await do(store, "c1", ev("ringing", "bob", at=NOW + 5))
    assert not old.changed and await store.active("bob") == []
    ended = await do(store, "c1", ev("ended", at=NOW + 2))
    assert kinds(ended) == [("ended", ("alice",))]


async def test_a_ringing_naming_who_answered_is_a_retry_not_a_transfer(store: CallStore) -> None:
    """After alice answered, ringing alice+bob changes nothing; ringing bob alone is a transfer."""
    await do(store, "c1", ev("ringing", "alice", "bob"))
    answered = await do(store, "c1", ev("answered", "alice"))
    assert kinds(answered) == [("answered", ("alice",)), ("withdrawn", ("bob",))]
    retry = await do(store, "c1", ev("ringing", "alice", "bob"))
    assert not retry.changed and await store.active("bob") == []
    transfer = await do(store, "c1", ev("ringing", "bob"))
    assert kinds(transfer) == [("ringing", ("bob",))]
    stored = await store.get("c1")
    assert stored is not None and stored.card.transferred_from == "alice"


async def test_ended_is_a_tombstone(store: CallStore) -> None:
    """ended closes the card for its agents; any later event, even a new ringing, is ignored."""
    await do(store, "c1", ev("ringing", "alice"))
    assert kinds(await do(store, "c1", ev("ended"))) == [("ended", ("alice",))]
    late = await do(store, "c1", ev("ringing", "bob"))
    assert not late.changed and late.refused == "the call ended"
    assert await store.active("alice") == [] == await store.active("bob")
    first = await do(store, "c2", ev("ended"))  # ended before anything: no late pop either
    assert first.changed and not (await do(store, "c2", ev("ringing", "alice"))).changed
    stored = await store.get("c2")
    assert stored is not None and stored.ended


async def test_who_had_the_call_answered_owes_its_wrapup_until_it_is_saved(store: CallStore, store_url: str) -> None:
    """After `ended` the call stays in the index of the agent who had it answered (only theirs), as an ended
    card, until `Wrapped`; a call that ended unanswered is owed by nobody; the owed entry ends with the call."""
    await do(store, "c1", ev("ringing", "alice", "bob"))
    await do(store, "c1", ev("answered", "alice"))
    assert kinds(await do(store, "c1", ev("ended"))) == [("ended", ("alice",))]
    (owed,) = await store.active("alice")
    assert (owed.call_id, owed.state, owed.answered_by) == ("c1", "ended", "alice")
    assert await store.active("bob") == []
    assert (await do(store, "c1", Wrapped("bob"))).refused == "no wrap-up owed by this agent"
    assert (await do(store, "c1", ev("ringing", "bob"))).refused == "the call ended"
    assert (await do(store, "c1", Wrapped("alice"))).changed
    assert await store.active("alice") == []
    assert not (await do(store, "c1", Wrapped("alice"))).changed
    await do(store, "c2", ev("ringing", "alice"))
    await do(store, "c2", ev("ended"))
    assert await store.active("alice") == []
    await do(store, "c3", ev("answered", "alice"))
    await do(store, "c3", ev("ended"))
    assert [c.call_id for c in await store.active("alice")] == ["c3"]
    if store_url.startswith("memory"):  # (Redis: the keys' TTL, test_records_and_indexes_have_a_ttl)
        await store.expire(time.time() + TTL + 1)
        assert await store.active("alice") == [] and store._agents == {}  # type: ignore[attr-defined]


async def test_a_change_made_between_a_read_and_a_write_elsewhere_is_a_conflict_and_retried(redis_url: str) -> None:
    """Redis: b learns the call (its first set, made on the guess of a new call, answers the record), a
    changes it, then b writes: b's compare-and-set fails, b applies its change on a's, so the stored record
    is the serial one (alice answers, then bob takes over)."""
    prefix = f"test-calls-{uuid.uuid4().hex[:10]}"
    a, b = (callstore_from_url(redis_url, ttl_s=TTL, prefix=prefix) for _ in range(2))
    await a.connect()
    await b.connect()
    try:
        await do(a, "c1", ev("ringing", "alice", "bob"))
        real_set, b_read, a_done = b._script, asyncio.Event(), asyncio.Event()  # type: ignore[attr-defined]

        async def set_then_wait(*args: Any, **kwargs: Any) -> Any:  # b's read, held until a's change is stored
            out = await real_set(*args, **kwargs)
            if isinstance(out, list) and not a_done.is_set():
                b_read.set()
                await a_done.wait()
            return out

        b._script = set_then_wait  # type: ignore[attr-defined]
        by_b = asyncio.create_task(do(b, "c1", ev("answered", "bob")))
        await b_read.wait()
        await do(a, "c1", ev("answered", "alice"))
        a_done.set()
        await by_b
        rec = step("c1", ev("ringing", "alice", "bob"))(None).record
        for agent in ("alice", "bob"):
            rec = step("c1", ev("answered", agent))(rec).record
        stored = await a.get("c1")
        assert b.conflicts == 1 and a.conflicts == 0  # type: ignore[attr-defined]
        assert stored is not None and rec is not None and stored.to_json() == rec.to_json()
    finally:
        await a.close()
        await b.close()


async def test_the_due_index_follows_the_lookup(store: CallStore) -> None:
    """A started lookup is due at its lease; settled sections take it off; a sweep past the deadline settles
    what is pending as unavailable."""
    await do(store, "c1", ev("offered"))
    stored = await store.get("c1")
    assert stored is not None
    assert await store.due(stored.lease_until - 1, 10) == []
    assert await store.due(stored.lease_until, 10) == ["c1"]
    await do(store, "c1", Settle("t1", Section(name="customer", status=SectionStatus.OK)))
    assert (await do(store, "c1", Settle("stale", Section(name="balance", status=SectionStatus.OK)))).refused
    swept = await do(store, "c1", Sweep("t2"), stored.deadline)
    assert [(e.kind, e.detail.name, e.detail.status) for e in swept.effects] == []  # nobody has the card
    after = await store.get("c1")
    assert after is not None and after.pending() == [] and after.card.sections[1].status == "unavailable"
    assert await store.due(stored.deadline + 100, 10) == []


async def test_two_instances_changing_one_call_at_once_give_a_serial_result(make_store: Callable[[], Any]) -> None:
    """Many calls, each answered by alice on one store and by bob on another at the same moment: each
    stored result is that of one order or the other, and exactly one agent keeps the card."""
    a, b = await make_store(), await make_store()
    ids = [f"race-{i}" for i in range(40)]
    for cid in ids:
        await do(a, cid, ev("ringing", "alice", "bob"))
    results = await asyncio.gather(*(asyncio.gather(do(a, cid, ev("answered", "alice")),
                                                    do(b, cid, ev("answered", "bob"))) for cid in ids))
    for cid, (by_a, by_b) in zip(ids, results, strict=True):
        stored = await a.get(cid)
        assert stored is not None
        serial = []  # per order: the stored record, and what each answer said to send
        for first, second in (("alice", "bob"), ("bob", "alice")):
            rec = step(cid, ev("ringing", "alice", "bob"))(None).record
            said = {}
            for agent in (first, second):
                out = step(cid, ev("answered", agent))(rec)
                rec, said[agent] = out.record, kinds(out)
            assert rec is not None
            serial.append((rec.to_json(), said))
        assert (stored.to_json(), {"alice": kinds(by_a), "bob": kinds(by_b)}) in serial
        assert stored.ringing == [stored.card.answered_by]
    kept = {x: [cid for cid in ids if (r := await b.get(cid)) is not None and r.card.answered_by == x]
            for x in ("alice", "bob")}
    for x in ("alice", "bob"):
        assert sorted(c.call_id for c in await b.active(x)) == sorted(kept[x])


async def test_concurrent_settles_and_events_lose_nothing(make_store: Callable[[], Any]) -> None:
    """Sections settled on one store while events land on another, interleaved at random: every section and
    every ringing agent is in the stored record at the end."""
    a, b = await make_store(), await make_store()
    names = tuple(f"s{i}" for i in range(8))
    rng = random.Random(7)

    def card8(call_id: str) -> Card:
        return card(call_id, names)

    async def settle(name: str) -> None:
        await a.apply("c1", lambda r: transition("c1", r, Settle("t1", Section(name=name, status="ok")), NOW))

    async def ring(agent: str) -> None:
        await b.apply("c1", lambda r: transition("c1", r, ev("ringing", agent), NOW))

    await a.apply("c1", lambda r: _created(transition("c1", new_record(card8("c1")), ev("offered"), NOW)))
    jobs = [settle(n) for n in names] + [ring(f"agent{i}") for i in range(8)]
    rng.shuffle(jobs)
    await asyncio.gather(*jobs)
    stored = await a.get("c1")
    assert stored is not None
    assert {s.name: s.status for s in stored.card.sections} == dict.fromkeys(names, "ok")
    assert sorted(stored.ringing) == sorted(f"agent{i}" for i in range(8))


def _created(out: Outcome) -> Outcome:
    out.changed = True
    return out


async def test_records_and_indexes_have_a_ttl(store: CallStore, store_url: str) -> None:
    """Every key written lives at most ttl_s (Redis: a TTL on each; memory: `expire` closes the call)."""
    await do(store, "c1", ev("ringing", "alice"))
    if store_url.startswith("memory"):
        assert await store.expire(time.time()) == []
        (effect,) = await store.expire(time.time() + TTL + 1)
        assert (effect.kind, effect.to, effect.call_id) == ("ended", ("alice",), "c1")
        assert await store.active("alice") == []
        return
    client = store._require()  # type: ignore[attr-defined]
    for key in (store._key("c1"), store._agent_key("alice"), store._due_key):  # type: ignore[attr-defined]
        ttl = await client.ttl(key)
        assert 0 < ttl <= TTL, (key, ttl)


async def test_an_unreachable_redis_raises_its_error() -> None:
    """Redis: a server that does not answer raises CallStoreError naming host:port, never the password."""
    bad = callstore_from_url("redis://:s3cret@127.0.0.1:1/0", timeout=0.5)
    with pytest.raises(CallStoreError) as caught:
        await bad.connect()
    assert "127.0.0.1:1" in str(caught.value) and "s3cret" not in str(caught.value)


class RoundTrips:
    """Counts the commands redis-py sends (each a round trip) from `start()` on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch, self.sent = monkeypatch, 0

    def start(self) -> None:
        from redis.asyncio.connection import AbstractConnection

        original = AbstractConnection.send_packed_command

        async def counting(conn: Any, command: Any, check_health: bool = True) -> None:
            self.sent += 1
            await original(conn, command, check_health)

        self.monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    """A counter of redis-py's commands, started by the test where it wants."""
    return RoundTrips(monkeypatch)


async def test_round_trips_per_change(redis_url: str, round_trips: RoundTrips) -> None:
    """Redis: a new call's first change costs one round trip (the compare-and-set script, no read), and so
    does a change following this store's own; a change to a call that ended here (not remembered: the set
    answers the tombstone, nothing to store), one. A call of ringing, 4 sections and ended on one instance:
    6."""
    store = callstore_from_url(redis_url, ttl_s=TTL, prefix=f"test-rt-{uuid.uuid4().hex[:8]}")
    await store.connect()
    try:
        round_trips.start()
        names = ("customer", "balance", "orders", "credit")
        await store.apply("c1", lambda r: _created(transition("c1", new_record(card("c1", names)),
                                                              ev("ringing", "alice"), NOW)))
        per_change = round_trips.sent
        for n in names:
            await store.apply("c1", lambda r, n=n: transition("c1", r, Settle("t1", Section(name=n, status="ok")),
                                                              NOW))
        await store.apply("c1", lambda r: transition("c1", r, ev("ended"), NOW))
        call = round_trips.sent
        await store.apply("c1", lambda r: transition("c1", r, ev("ended"), NOW))
        unchanged = round_trips.sent - call
    finally:
        await store.close()
    assert (per_change, call, unchanged) == (1, 6, 1)


async def test_a_change_to_a_call_another_store_made_costs_two_round_trips(
        redis_url: str, round_trips: RoundTrips) -> None:
    """Redis: b's first change of a's call (b guesses a new call) is refused by the compare-and-set, which
    answers the record, and stored by a second one; a change that means nothing for a new call (answered for
    a call b never saw) reads the record instead of guessing: it finds a's call and is applied to it."""
    prefix = f"test-rt2-{uuid.uuid4().hex[:8]}"
    a, b = (callstore_from_url(redis_url, ttl_s=TTL, prefix=prefix) for _ in range(2))
    await a.connect()
    await b.connect()
    names = ("customer",)

    def answered(call_id: str, agent: str) -> Callable[[CallRecord | None], Outcome]:
        return lambda r: transition(call_id, r, ev("answered", agent), NOW + 1)  # no record made for None

    try:
        for call_id in ("c1", "c2"):
            await a.apply(call_id, lambda r, c=call_id: _created(transition(c, new_record(card(c, names)),
                                                                            ev("ringing", "alice", "bob"), NOW)))
        round_trips.start()
        ended = await b.apply("c1", step("c1", ev("ended")))
        after_ended = round_trips.sent
        took = await b.apply("c2", answered("c2", "alice"))
        after_answered = round_trips.sent - after_ended
        missing = await b.apply("c3", answered("c3", "alice"))
        stored = await a.get("c2")
    finally:
        await a.close()
        await b.close()
    assert ended.changed and [e.kind for e in ended.effects] == ["ended"] and after_ended == 2
    assert took.changed and after_answered == 2  # the read (MGET), then the set
    assert stored is not None and stored.card.state == "answered" and list(stored.ringing) == ["alice"]
    assert not missing.changed and missing.refused == "no such call"
    assert b.conflicts == 0  # type: ignore[attr-defined]  # a wrong guess is no conflict


async def test_changes_of_one_call_at_once_on_one_store_are_stored_together(
        redis_url: str, round_trips: RoundTrips) -> None:
    """Redis: four sections settled in one turn of the event loop on one store are each applied, in the order
    they came, with one compare-and-set (then the read: 2 round trips, not 5 or more)."""
    store = callstore_from_url(redis_url, ttl_s=TTL, prefix=f"test-batch-{uuid.uuid4().hex[:8]}")
    await store.connect()
    names = ("customer", "balance", "orders", "credit")
    settled: list[str] = []

    def settle(n: str) -> Callable[[CallRecord | None], Outcome]:
        def run(record: CallRecord | None) -> Outcome:
            settled.append(n)
            return transition("c1", record, Settle("t1", Section(name=n, status="ok")), NOW)
        return run

    try:
        await store.apply("c1", lambda r: _created(transition("c1", new_record(card("c1", names)),
                                                              ev("ringing", "alice"), NOW)))
        round_trips.start()
        outs = await asyncio.gather(*(store.apply("c1", settle(n)) for n in names))
        record = await store.get("c1")
    finally:
        await store.close()
    assert all(o.changed and [e.kind for e in o.effects] == ["section"] for o in outs)
    assert settled == list(names)
    assert record is not None and not record.pending()
    # one set for the four (no read: this store made the last change), then the test's read
    assert round_trips.sent == 1 + 1


async def test_a_batch_is_stored_when_the_change_that_took_it_is_cancelled(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis: changes taken along by a change that is cancelled while the batch is stored are still stored
    and answered."""
    from redis.asyncio.connection import AbstractConnection

    first_sends, first_goes = asyncio.Event(), asyncio.Event()
    batch_sends, proceed = asyncio.Event(), asyncio.Event()
    original = AbstractConnection.send_packed_command
    first: asyncio.Future[Outcome] | None = None

    async def signalling(self: Any, command: Any, check_health: bool = True) -> None:
        task = asyncio.current_task()
        if task is first:
            first_sends.set()  # the first change waits until the others have queued behind it
            await first_goes.wait()
        elif task is not None and task.get_coro().__qualname__ == "RedisCallStore._apply":
            batch_sends.set()  # the batch's own task: it waits until the test has cancelled the batch's taker
            await proceed.wait()
        await original(self, command, check_health)

    store = callstore_from_url(redis_url, ttl_s=TTL, prefix=f"test-batch-{uuid.uuid4().hex[:8]}")
    await store.connect()
    names = ("customer", "balance", "orders", "credit")

    def settle(n: str) -> Callable[[CallRecord | None], Outcome]:
        return lambda r: transition("c1", r, Settle("t1", Section(name=n, status="ok")), NOW)

    try:
        await store.apply("c1", lambda r: _created(transition("c1", new_record(card("c1", names)),
                                                              ev("ringing", "alice"), NOW)))
        monkeypatch.setattr(AbstractConnection, "send_packed_command", signalling)
        first = asyncio.ensure_future(store.apply("c1", settle("customer")))
        await asyncio.wait_for(first_sends.wait(), 5)  # the first is being stored: the next three wait, then go
        # together
        rest = [asyncio.ensure_future(store.apply("c1", settle(n))) for n in names[1:]]
        await asyncio.sleep(0)
        first_goes.set()
        await first
        await asyncio.wait_for(batch_sends.wait(), 5)  # the batch is being stored, by its own task
        rest[0].cancel()
        await asyncio.sleep(0)
        proceed.set()
        outs = await asyncio.wait_for(asyncio.gather(*rest[1:]), 5)
        record = await store.get("c1")
    finally:
        await store.close()
    assert rest[0].cancelled()
    assert all(o.changed for o in outs)
    assert record is not None and not record.pending()


async def test_a_store_on_the_bus_publishes_each_change_with_it_in_order(redis_url: str) -> None:
    """Two Redis stores ("instances") with the bus's channel, changing one call at once: every stored change's
    messages reach a subscriber once, in the order of the record's changes (no section before its card)."""
    prefix, channel = f"test-calls-{uuid.uuid4().hex[:10]}", f"test-pub-{uuid.uuid4().hex[:10]}"
    a, b = (callstore_from_url(redis_url, ttl_s=TTL, prefix=prefix, channel=channel) for _ in range(2))
    listener = callstore_from_url(redis_url, ttl_s=TTL, prefix=prefix)
    assert a.publishes and not listener.publishes
    for s in (a, b):
        await s.connect()
    client = parse_redis_url(redis_url).client()
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    try:
        names = tuple(f"s{i}" for i in range(6))
        await a.apply("c1", lambda r: _created(transition("c1", new_record(card("c1", names)), ev("offered"), NOW)),
                      lambda out: [f"change {len(out.effects)}"])

        def render(out: Outcome) -> list[str]:
            assert out.record is not None
            done = sum(1 for s in out.record.card.sections if s.status == "ok")
            return [f"{done}:{e.kind}:{','.join(e.to)}" for e in out.effects]

        async def settle(store: CallStore, name: str) -> None:
            await store.apply("c1", lambda r: transition("c1", r, Settle("t1", Section(name=name, status="ok")), NOW),
                              render)

        await a.apply("c1", lambda r: transition("c1", r, ev("ringing", "alice"), NOW), render)
        await asyncio.gather(*(settle(a if i % 2 else b, n) for i, n in enumerate(names)))
        got: list[str] = []
        async with asyncio.timeout(5):
            while len(got) < 1 + 1 + len(names):
                m = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if m is not None:
                    got.append(m["data"].decode())
        assert got[0] == "change 0" and got[1].startswith("0:ringing:")
        settled = [int(t.split(":")[0]) for t in got[2:]]
        assert settled == sorted(settled) == list(range(1, len(names) + 1))  # each after the one stored before it
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()
        for s in (a, b):
            await s.close()


async def test_a_change_after_one_made_elsewhere_reads_the_new_record(redis_url: str) -> None:
    """Redis: a store whose remembered version is stale (another instance changed the call since) stores nothing
    on it: it reads the new record and applies the change there, losing neither change."""
    prefix = f"test-calls-{uuid.uuid4().hex[:10]}"
    a, b = (callstore_from_url(redis_url, ttl_s=TTL, prefix=prefix) for _ in range(2))
    for s in (a, b):
        await s.connect()
    try:
        names = ("customer", "balance", "orders")
        await a.apply("c1", lambda r: _created(transition("c1", new_record(card("c1", names)), ev("ringing", "alice"),
                                                          NOW)))
        await b.apply("c1", lambda r: transition("c1", r, ev("ringing", "bob"), NOW))  # a's memory is now stale
        await a.apply("c1", lambda r: transition("c1", r, Settle("t1", Section(name="balance", status="ok")), NOW))
        stored = await b.get("c1")
        assert stored is not None
        assert sorted(stored.ringing) == ["alice", "bob"]
        assert {s.name: s.status for s in stored.card.sections}["balance"] == "ok"
    finally:
        for s in (a, b):
            await s.close()
