"""The journal outbox: a wrap-up saved first, delivered with retries and back-off, once per call and agent,
also across a restart; on memory, SQLite and PostgreSQL stores."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from connectors.base import ConnectorError, Journal
from screenpop import protocol
from screenpop.callstore.machine import CallRecord, Event, Outcome, new_record, transition
from screenpop.callstore.memory import MemoryCallStore
from screenpop.journal import HistoryConnector, JournalService, entry_key
from screenpop.journalstore import JournalStore, MemoryJournalStore, Row, SqlJournalStore
from screenpop.models import Caller, Card, Customer, EventKind, LookupQuery, WrapUp
from tests.conftest import DATABASE_URL, need


class FakeCrm(Journal):
    """A target that keeps one entry per idempotency key and fails while `down`."""

    kind = "fake"

    def __init__(self) -> None:
        super().__init__("crm", Journal.Options())
        self.down = False
        self.entries: dict[str, WrapUp] = {}
        self.keys: list[str] = []  # every try's key

    async def write(self, entry: WrapUp) -> None:
        """Keep the entry under its key, unless down."""
        self.keys.append(entry.key)
        if self.down:
            raise ConnectorError("cannot connect to crm:80")
        self.entries.setdefault(entry.key, entry)

    async def ping(self) -> None:
        """Up unless down."""
        if self.down:
            raise ConnectorError("down")


class Calls:
    """The call store's `get` and `apply`, over a dict of records."""

    def __init__(self) -> None:
        self.records: dict[str, CallRecord] = {}

    def add(self, call_id: str, agent: str, customer: str | None = "C1", phone: str = "+14155550100") -> None:
        card = Card(call_id=call_id, caller=Caller(raw=phone, e164=phone), state="answered", answered_by=agent,
                    customer=Customer(id=customer, name="Ada Lovelace") if customer else None)
        self.records[call_id] = CallRecord(card=card, ringing=[agent])

    async def get(self, call_id: str) -> CallRecord | None:
        return self.records.get(call_id)

    async def apply(self, call_id: str, step: Callable[[CallRecord | None], Outcome], render: Any = None) -> Outcome:
        out = step(self.records.get(call_id))
        if out.changed and out.record is not None:
            self.records[call_id] = out.record
        return out


class Sent:
    """The agents' outbox: the messages sent, parsed."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], dict[str, Any]]] = []

    async def send(self, to: Any, message: protocol.Message) -> None:
        self.messages.append((list(to), json.loads(message.text)))

    def states(self) -> list[str]:
        return [m["state"] for _, m in self.messages]


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
async def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Callable[[], JournalStore]]:
    """Makes stores that share their rows (a restart opens the same rows again)."""
    if request.param == "memory":
        shared = MemoryJournalStore()
        yield lambda: shared
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
        yield lambda: SqlJournalStore(url)
        return
    try:
        import asyncpg

        conn = await asyncpg.connect(DATABASE_URL.replace("postgresql://", "postgres://"), timeout=3)
    except Exception as err:
        need(False, f"PostgreSQL not reachable: {err}")
    await conn.execute("DROP TABLE IF EXISTS screenpop_journal")
    await conn.close()
    yield lambda: SqlJournalStore(DATABASE_URL)


def service(store: JournalStore, calls: Calls, sent: Sent, crm: FakeCrm | None, clock: Clock) -> JournalService:
    return JournalService(store, calls, sent, writer=crm, names=str.upper,  # type: ignore[arg-type]
                          dispositions=["resolved", "callback"], retry_base_s=2.0, retry_max_s=30.0,
                          poll_s=3600, clock=clock, rng=lambda: 1.0)


def wrapup(call_id: str, notes: str = "Wants a callback", disposition: str = "callback") -> protocol.WrapUpRequest:
    request = protocol.read_request({"type": "wrapup", "call_id": call_id, "notes": notes,
                                     "disposition": disposition, "follow_up": "2026-12-01"})
    assert isinstance(request, protocol.WrapUpRequest)
    return request


async def test_a_wrapup_is_queued_retried_with_back_off_then_saved(store_factory: Callable[[], JournalStore]) -> None:
    """While the CRM is down the entry stays queued with the error, retried after 2 s then 4 s; then saved once."""
    calls, sent, crm, clock = Calls(), Sent(), FakeCrm(), Clock()
    calls.add("c1", "alice")
    journal = service(store_factory(), calls, sent, crm, clock)
    await journal.store.start()
    try:
        crm.down = True
        assert await journal.save("alice", wrapup("c1")) is None
        assert await journal.deliver_due() == 1
        assert sent.states() == ["queued", "queued"]
        assert sent.messages[-1][1]["last_error"] == "cannot connect to crm:80"
        assert sent.messages[-1][1]["attempts"] == 1
        clock.t += 1.9
        assert await journal.deliver_due() == 0  # not due before the back-off
        clock.t += 0.2
        assert await journal.deliver_due() == 1
        clock.t += 3.9
        assert await journal.deliver_due() == 0  # the second delay is twice the first
        crm.down = False
        clock.t += 0.2
        assert await journal.deliver_due() == 1
        assert sent.states()[-1] == "saved"
        assert list(crm.entries) == [entry_key("c1", "alice")]
        assert set(crm.keys) == {entry_key("c1", "alice")} and len(crm.keys) == 3
        clock.t += 1000
        assert await journal.deliver_due() == 0  # saved: never sent again
    finally:
        await journal.store.close()


async def test_a_saved_wrapup_cannot_be_saved_again_but_a_queued_one_is_replaced(
        store_factory: Callable[[], JournalStore]) -> None:
    """Saving again before delivery replaces the entry (one key); after delivery it is refused."""
    calls, sent, crm, clock = Calls(), Sent(), FakeCrm(), Clock()
    calls.add("c2", "alice")
    journal = service(store_factory(), calls, sent, crm, clock)
    await journal.store.start()
    try:
        crm.down = True
        await journal.save("alice", wrapup("c2", "first"))
        await journal.save("alice", wrapup("c2", "second"))
        crm.down = False
        await journal.deliver_due()
        assert [e.notes for e in crm.entries.values()] == ["second"]
        assert await journal.save("alice", wrapup("c2", "third")) == "this wrap-up is saved already"
        assert sent.states()[-1] == "refused"
    finally:
        await journal.store.close()


async def test_a_restart_delivers_what_was_queued(store_factory: Callable[[], JournalStore]) -> None:
    """An entry queued by one instance that stopped is delivered by the next one, exactly once."""
    calls, sent, crm, clock = Calls(), Sent(), FakeCrm(), Clock()
    calls.add("c3", "bob")
    first = service(store_factory(), calls, sent, crm, clock)
    await first.store.start()  # (no delivery loop: the one pass below is the only try)
    crm.down = True
    await first.save("bob", wrapup("c3"))
    await first.deliver_due()
    await first.store.close()

    crm.down = False
    calls.records.clear()  # the call itself is long gone
    second = service(store_factory(), calls, Sent(), crm, clock)
    await second.start()
    try:
        clock.t += 60
        assert await second.deliver_due() == 1
        assert len(crm.entries) == 1
        rows = await second.store.for_call("c3")
        assert [(r.state, r.attempts) for r in rows] == [("saved", 2)]
    finally:
        await second.close()


async def test_a_shutdown_during_a_write_releases_the_row(store_factory: Callable[[], JournalStore]) -> None:
    """Closing the service while a write hangs counts a failed try and frees the row for the next instance
    at once (not after the hold)."""
    started = asyncio.Event()

    class Hangs(FakeCrm):
        async def write(self, entry: WrapUp) -> None:
            started.set()
            await asyncio.sleep(3600)

    calls, sent, clock = Calls(), Sent(), Clock()
    calls.add("s1", "alice")
    journal = service(store_factory(), calls, sent, Hangs(), clock)
    await journal.start()
    await journal.save("alice", wrapup("s1"))
    await asyncio.wait_for(started.wait(), 10)
    await journal.close()
    store = store_factory()
    await store.start()
    try:
        (row,) = await store.claim(clock.t, 60, 10)
        assert (row.attempts, row.last_error) == (1, "interrupted by a shutdown")
    finally:
        await store.close()


async def test_two_instances_never_hold_the_same_row(store_factory: Callable[[], JournalStore]) -> None:
    """Two claims at the same moment share out the due rows: none is taken twice."""
    calls, sent, clock = Calls(), Sent(), Clock()
    a, b = store_factory(), store_factory()
    await a.start()
    await b.start()
    try:
        journal = service(a, calls, sent, FakeCrm(), clock)
        for i in range(6):
            calls.add(f"k{i}", "alice")
            await journal.save("alice", wrapup(f"k{i}"))
        got_a, got_b = await asyncio.gather(a.claim(clock.t, 60, 20), b.claim(clock.t, 60, 20))
        keys = [r.entry.key for r in got_a + got_b]
        assert len(keys) == len(set(keys)) == 6
    finally:
        await a.close()
        if b is not a:
            await b.close()


async def test_only_the_calls_agent_may_wrap_up_and_only_with_a_known_disposition() -> None:
    """bob cannot save alice's call; an unknown disposition or call is refused with a reason."""
    calls, sent, clock = Calls(), Sent(), Clock()
    calls.add("c4", "alice")
    journal = service(MemoryJournalStore(), calls, sent, FakeCrm(), clock)
    assert await journal.save("bob", wrapup("c4")) == "this call was not yours"
    assert await journal.save("alice", wrapup("c4", disposition="sale")) == "unknown disposition 'sale'"
    assert await journal.save("alice", wrapup("nope")) == "no such call"
    assert sent.states() == ["refused"] * 3
    assert [to for to, _ in sent.messages] == [["bob"], ["alice"], ["alice"]]


async def test_a_saved_wrapup_takes_its_ended_call_out_of_the_agents_snapshot() -> None:
    """alice owes the wrap-up of the call she answered: it is in her snapshot after the end until she saves it."""
    calls = MemoryCallStore()
    card = Card(call_id="c9", caller=Caller(raw="+14155550100", e164="+14155550100"))
    for kind, agents in [(EventKind.RINGING, ("alice", "bob")), (EventKind.ANSWERED, ("alice",)),
                         (EventKind.ENDED, ())]:
        await calls.apply("c9", lambda rec, kind=kind, agents=agents: transition(
            "c9", rec or new_record(card.model_copy()), Event(kind, agents), 0.0))
    assert [c.call_id for c in await calls.active("alice")] == ["c9"] and await calls.active("bob") == []
    journal = service(MemoryJournalStore(), calls, Sent(), FakeCrm(), Clock())  # type: ignore[arg-type]
    assert await journal.save("alice", wrapup("c9", disposition="sale")) is not None  # refused: still owed
    assert [c.call_id for c in await calls.active("alice")] == ["c9"]
    assert await journal.save("alice", wrapup("c9")) is None
    assert await calls.active("alice") == []


async def test_history_lists_the_customers_last_calls_and_a_transfer_sees_the_draft() -> None:
    """The history section lists saved calls newest first (not drafts); the next agent reads the draft."""
    calls, sent, clock = Calls(), Sent(), Clock()
    journal = service(MemoryJournalStore(), calls, sent, None, clock)
    for i, notes in enumerate(["older", "newer"]):
        calls.add(f"h{i}", "alice")
        await journal.save("alice", wrapup(f"h{i}", notes))
    calls.add("h2", "alice")
    draft = protocol.read_request({"type": "wrapup.draft", "call_id": "h2", "notes": "so far"})
    assert isinstance(draft, protocol.DraftRequest)
    await journal.draft("alice", draft)
    calls.records["h2"].card.transferred_from = "alice"
    calls.records["h2"].card.answered_by = "bob"
    history = await HistoryConnector(journal, 5).fetch(LookupQuery(phone="+1", customer_id="C1"))
    assert [r["notes"] for r in history or []] == ["newer", "older"]
    assert (history or [{}])[0]["agent"] == "ALICE"
    assert sent.states() == ["local", "local"]  # no journal connector: screenpop's history only
    seen = await journal.for_call("bob", "h2")
    assert [(r["agent"], r["state"], r["notes"]) for r in seen or []] == [("alice", "draft", "so far")]
    assert await journal.for_call("carol", "h2") is None


def test_back_off_doubles_up_to_the_maximum() -> None:
    """Delays double from retry_base_s and stop at retry_max_s, drawn within 80-100 % of that."""
    journal = JournalService(MemoryJournalStore(), Calls(), Sent(), writer=None, names=str,  # type: ignore[arg-type]
                             dispositions=[], retry_base_s=2, retry_max_s=30, rng=lambda: 1.0)
    assert [journal.delay(n) for n in range(1, 7)] == [2, 4, 8, 16, 30, 30]
    journal.rng = lambda: 0.0
    assert journal.delay(1) == pytest.approx(1.6)


async def test_a_writer_that_hangs_counts_as_a_failure() -> None:
    """A write that does not answer within the timeout is retried later with a reason."""

    class Hangs(FakeCrm):
        async def write(self, entry: WrapUp) -> None:
            await asyncio.sleep(3600)

    calls, sent, clock = Calls(), Sent(), Clock()
    calls.add("t1", "alice")
    journal = service(MemoryJournalStore(), calls, sent, Hangs(), clock)
    journal.write_timeout_s = 0.05
    await journal.save("alice", wrapup("t1"))
    await journal.deliver_due()
    assert sent.messages[-1][1]["state"] == "queued"
    assert "no answer" in sent.messages[-1][1]["last_error"]
    row = await journal.store.get(entry_key("t1", "alice"))
    assert isinstance(row, Row) and row.attempts == 1


def test_keys_are_per_call_and_agent() -> None:
    """The idempotency key depends on the call and the agent only."""
    assert entry_key("c", "alice") == entry_key("c", "alice")
    assert len({entry_key("c", "alice"), entry_key("c", "bob"), entry_key("d", "alice")}) == 3
    assert entry_key(str(uuid.uuid4()), "a").startswith("sp-")
