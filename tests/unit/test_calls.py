"""The call state machine: who gets which card, when."""

import asyncio
import time

import pytest

from screenpop.auth import Directory
from screenpop.cache import SectionCache
from screenpop.cache.memory import MemoryCache
from screenpop.cache.policy import CachePolicy
from screenpop.calls import CallRegistry
from screenpop.config import AgentConfig
from screenpop.models import CallEvent
from tests.unit.fakes import FakeConnector, RecordingOutbox, demo_lookup

AGENTS = [
    AgentConfig(id="alice", password_hash="x" * 20, extensions=["1001"], addresses=["client:alice"]),
    AgentConfig(id="bob", password_hash="x" * 20, extensions=["1002"], addresses=["client:bob"]),
]


def ev(event: str, agents: list[str] | None = None, caller: str = "+14155550100", cid: str = "c1") -> CallEvent:
    return CallEvent(call_id=cid, event=event, caller=caller, agents=agents or [])


@pytest.fixture
def setup():
    lookup, fakes = demo_lookup()
    outbox = RecordingOutbox()
    registry = CallRegistry(Directory(AGENTS), lookup, outbox, ttl_s=60, max_calls=3)  # type: ignore[arg-type]
    return registry, outbox, fakes


async def settle(registry: CallRegistry) -> None:
    async with asyncio.timeout(5):
        while registry.runs:
            await asyncio.gather(*[r.task for r in registry.runs.values()], return_exceptions=True)


async def test_offered_then_ringing_gives_the_prefetched_card(setup) -> None:
    """The lookup starts at offered; the agent who rings later gets the card with everything settled."""
    registry, outbox, fakes = setup
    await registry.handle(ev("offered"))
    await settle(registry)
    assert outbox.sent == []  # nobody rings yet: nobody sees anything
    await registry.handle(ev("ringing", ["1001"]))
    (msg,) = outbox.to("alice")
    assert msg["type"] == "call.ringing"
    card = msg["call"]
    assert card["customer"]["name"] == "Dana Whitfield"
    assert {s["name"]: s["status"] for s in card["sections"]} == {"customer": "ok", "balance": "ok", "credit": "ok"}
    assert outbox.to("bob") == []
    assert len(fakes["customers"].calls) == 1


async def test_sections_stream_to_ringing_agents(setup) -> None:
    """Ringing before the lookup settles: the card comes first, then one card.section per section."""
    registry, outbox, fakes = setup
    fakes["customers"].gate = gate = asyncio.Event()  # the identity source is slow to answer
    await registry.handle(ev("ringing", ["1001", "client:bob"]))
    gate.set()
    await settle(registry)
    for agent in ("alice", "bob"):
        types = outbox.types(agent)
        assert types[0] == "call.ringing"
        assert {s["status"] for s in outbox.to(agent)[0]["call"]["sections"]} == {"pending"}
        assert sorted(m["name"] for m in outbox.to(agent)[1:]) == ["balance", "credit", "customer"]


async def cached_registry() -> tuple[CallRegistry, RecordingOutbox, dict[str, FakeConnector]]:
    """A registry whose sources cache their answers in memory for a minute."""
    lookup, fakes = demo_lookup()
    backend = MemoryCache()
    await backend.connect()
    for s in lookup.sources:
        s.config = s.config.model_copy(update={"cache": CachePolicy(ttl_s=60)})
        s.cache = SectionCache(backend)
        s.__post_init__()  # the guards and the cache policy follow the new config
    outbox = RecordingOutbox()
    return CallRegistry(Directory(AGENTS), lookup, outbox), outbox, fakes  # type: ignore[arg-type]


async def test_answers_at_hand_leave_with_the_card() -> None:
    """A repeat caller whose answers are in the in-process cache gets the whole card in one message."""
    registry, outbox, fakes = await cached_registry()
    await registry.handle(ev("offered", cid="first"))
    await settle(registry)  # the cache is warm now
    await registry.handle(ev("ringing", ["1001"], cid="again"))
    (msg,) = outbox.to("alice")
    assert msg["type"] == "call.ringing"
    assert {s["name"]: s["status"] for s in msg["call"]["sections"]} == {"customer": "ok", "balance": "ok",
                                                                          "credit": "ok"}
    assert all(s["cached"] for s in msg["call"]["sections"])
    assert msg["call"]["customer"]["name"] == "Dana Whitfield"
    assert len(fakes["customers"].calls) == 1 and "again" not in registry.runs


async def test_a_cold_section_does_not_hold_the_card(setup) -> None:
    """With the identity at hand and one section not, the card leaves at once and that section follows."""
    registry, outbox, fakes = await cached_registry()
    await registry.handle(ev("offered", cid="first"))
    await settle(registry)
    fakes["credit"].answers["C1"] = {"terms": "Net 60"}
    for s in registry.lookup.sections:
        if s.name == "credit":
            await s.cache.close()
            s.cache = SectionCache(MemoryCache())  # credit's cache is empty (and not connected: a miss)
            await s.cache.backend.connect()
    fakes["credit"].gate = gate = asyncio.Event()
    await registry.handle(ev("ringing", ["1001"], cid="again"))
    (msg,) = outbox.to("alice")
    assert {s["name"]: s["status"] for s in msg["call"]["sections"]} == {"customer": "ok", "balance": "ok",
                                                                          "credit": "pending"}
    gate.set()
    await settle(registry)
    assert [(m["type"], m.get("name"), m.get("data")) for m in outbox.to("alice")[1:]] == [
        ("card.section", "credit", {"terms": "Net 60"})]


async def test_duplicate_events_pop_once(setup) -> None:
    """The same ringing twice sends one card; the same offered twice runs one lookup."""
    registry, outbox, fakes = setup
    await registry.handle(ev("offered"))
    await registry.handle(ev("offered"))
    await settle(registry)
    await registry.handle(ev("ringing", ["1001"]))
    await registry.handle(ev("ringing", ["1001"]))
    assert outbox.types("alice") == ["call.ringing"]
    assert len(fakes["customers"].calls) == 1


async def test_answer_withdraws_from_the_others(setup) -> None:
    """Ring-all to two agents; alice answers; bob gets call.withdrawn; later sections go to alice only."""
    registry, outbox, fakes = setup
    fakes["customers"].gate = gate = asyncio.Event()
    await registry.handle(ev("ringing", ["alice", "bob"]))
    await registry.handle(ev("answered", ["1001"]))
    gate.set()
    await settle(registry)
    assert "call.answered" in outbox.types("alice")
    bob = outbox.types("bob")
    assert bob[:2] == ["call.ringing", "call.withdrawn"] and len(bob) == 2
    assert outbox.types("alice")[-1] == "card.section"


async def test_end_closes_the_card_and_later_events_are_ignored(setup) -> None:
    """ended sends call.ended; a late ringing for the same call pops nothing."""
    registry, outbox, _ = setup
    await registry.handle(ev("ringing", ["1001"]))
    await registry.handle(ev("ended"))
    assert outbox.types("alice")[-1] == "call.ended"
    await registry.handle(ev("ringing", ["1002"]))
    assert outbox.to("bob") == []
    await settle(registry)  # the ended call's lookup was stopped: it ends
    assert await registry.store.active("alice") == []


async def test_ended_before_ringing_means_no_late_pop(setup) -> None:
    """Out of order: an ended that arrives first prevents any pop for that call."""
    registry, outbox, _ = setup
    await registry.handle(ev("ended"))
    await registry.handle(ev("ringing", ["1001"]))
    assert outbox.sent == []


async def test_unknown_agent_address_is_skipped(setup) -> None:
    """A ringing event naming nobody we know sends nothing to anyone."""
    registry, outbox, _ = setup
    await registry.handle(ev("ringing", ["9999"]))
    assert outbox.sent == []


async def test_withheld_number_rings_without_lookup(setup) -> None:
    """A withheld caller still pops a card that says so, with no lookup."""
    registry, outbox, fakes = setup
    await registry.handle(ev("ringing", ["1001"], caller="anonymous"))
    card = outbox.to("alice")[0]["call"]
    assert card["caller"]["status"] == "withheld"
    assert fakes["customers"].calls == []


async def test_calls_without_end_are_swept(setup) -> None:
    """A call nobody ends is dropped after the TTL, and its agents are told."""
    registry, outbox, _ = setup
    await registry.handle(ev("ringing", ["1001"]))
    await settle(registry)
    assert await registry.sweep(now=time.time() + 61) == 1
    assert outbox.types("alice")[-1] == "call.ended"
    await settle(registry)  # the ended call's lookup was stopped: it ends
    assert await registry.store.active("alice") == []


async def test_memory_is_bounded(setup) -> None:
    """Past max_calls the oldest call is dropped (its agents told), so memory stays bounded."""
    registry, outbox, _ = setup
    for i in range(5):
        await registry.handle(ev("ringing", ["1001"], cid=f"c{i}"))
    assert [c.call_id for c in await registry.store.active("alice")] == ["c2", "c3", "c4"]
    assert sum(1 for t in outbox.types("alice") if t == "call.ended") == 2
    await registry.close()


async def test_select_fills_sections_for_the_chosen_customer(setup) -> None:
    """Several matches: the agent's select fetches the sections for that customer."""
    registry, outbox, fakes = setup
    await registry.handle(ev("ringing", ["1001"], caller="+14155550111"))
    await settle(registry)
    assert await registry.select("bob", "c1", "C3") == "no such call for this agent"
    assert await registry.select("alice", "c1", "nope") == "that customer is not among the candidates"
    assert await registry.select("alice", "c1", "C3") is None
    await settle(registry)
    last = {m["name"]: m for m in outbox.to("alice") if m["type"] == "card.section"}
    assert last["balance"]["status"] == "ok" and last["balance"]["data"] == {"balance": 3}
    assert last["customer"]["data"]["customer"]["id"] == "C3"
    stored = await registry.store.get("c1")
    assert stored is not None and stored.card.customer is not None and stored.card.customer.id == "C3"


async def test_a_crashing_lookup_affects_no_other_call(setup) -> None:
    """A bug in one call's lookup is logged; the next call pops normally."""
    registry, outbox, fakes = setup

    def boom(*a, **k):
        raise RuntimeError("bug")

    original = registry.lookup.rank
    registry.lookup.rank = boom  # type: ignore[method-assign]
    await registry.handle(ev("ringing", ["1001"], cid="bad"))
    await settle(registry)
    registry.lookup.rank = original  # type: ignore[method-assign]
    await registry.handle(ev("ringing", ["1001"], cid="good"))
    await settle(registry)
    good = [m for m in outbox.to("alice") if m.get("call_id", m.get("call", {}).get("call_id")) == "good"]
    assert good[0]["type"] == "call.ringing"
    assert {m["name"]: m["status"] for m in good[1:]} == {"customer": "ok", "balance": "ok", "credit": "ok"}


async def test_withdrawn_event_takes_the_card_from_one_agent(setup) -> None:
    """The queue moves on: bob's phone stops ringing, alice's keeps ringing and keeps the card."""
    registry, outbox, _ = setup
    await registry.handle(ev("ringing", ["1001", "1002"]))
    await registry.handle(ev("withdrawn", ["1002"]))
    await registry.handle(ev("withdrawn", ["1002"]))
    assert outbox.types("bob") == ["call.ringing", "call.withdrawn"]
    assert outbox.to("bob")[-1]["reason"] == "stopped ringing"
    assert "call.withdrawn" not in outbox.types("alice")
    await registry.handle(ev("ringing", ["1002"]))  # the queue comes back to bob: he gets the card again
    assert outbox.types("bob")[-1] == "call.ringing"


async def test_transfer_gives_the_same_card_to_the_second_agent(setup) -> None:
    """alice answers, then the call rings at bob: bob gets the card marked as transferred, no second lookup."""
    registry, outbox, fakes = setup
    await registry.handle(ev("ringing", ["1001"]))
    await settle(registry)
    await registry.handle(ev("answered", ["1001"]))
    await registry.handle(ev("ringing", ["1002"]))
    card = outbox.to("bob")[0]["call"]
    assert card["transferred_from"] == "alice" and card["customer"]["name"] == "Dana Whitfield"
    await registry.handle(ev("answered", ["1002"]))
    assert outbox.to("alice")[-1] == {"type": "call.withdrawn", "call_id": "c1", "reason": "transferred to bob"}
    assert outbox.types("bob")[-1] == "call.answered"
    assert len(fakes["customers"].calls) == 1


async def test_withdrawn_never_takes_the_answered_call(setup) -> None:
    """A late 'stopped ringing' for the agent who answered leaves their card alone."""
    registry, outbox, _ = setup
    await registry.handle(ev("ringing", ["1001"]))
    await registry.handle(ev("answered", ["1001"]))
    await registry.handle(ev("withdrawn", ["1001"]))
    assert outbox.types("alice") == ["call.ringing", "call.answered"]


async def test_a_retried_ringing_after_answer_is_not_a_transfer(setup) -> None:
    """After alice answered, a repeated ringing for 1001 and 1002 (a PBX retry) shows bob nothing and leaves
    alice's card answered; bob's snapshot stays empty."""
    registry, outbox, _ = setup
    await registry.handle(ev("ringing", ["1001", "1002"]))
    await registry.handle(ev("answered", ["1001"]))
    await registry.handle(ev("ringing", ["1001", "1002"]))
    assert outbox.types("bob") == ["call.ringing", "call.withdrawn"]
    assert outbox.types("alice") == ["call.ringing", "call.answered"]
    assert await registry.store.active("bob") == []
    (card,) = await registry.store.active("alice")
    assert card.state == "answered" and card.transferred_from is None
    await settle(registry)


async def test_an_owner_that_stops_renewing_is_taken_over_and_the_deadline_holds(setup) -> None:
    """A lookup whose lease ran out is run again by the sweep; past the deadline whatever is pending is
    settled as unavailable, and the late run's sections are not taken."""
    registry, outbox, fakes = setup
    fakes["customers"].hang = True
    await registry.handle(ev("ringing", ["1001"]))
    (run,) = registry.runs.values()
    run.lease_until = float("inf")  # this instance will not renew: as if it had stopped
    record = await registry.store.get("c1")
    assert record is not None and record.lookup == run.token
    assert await registry.sweep(now=record.lease_until + 0.01) == 1  # taken over: a new run
    (again,) = registry.runs.values()
    assert again.token != run.token and (run.task.cancelled() or run.task.cancelling() > 0)
    assert await registry.sweep(now=record.deadline + 0.01) == 1  # the deadline: settled, the run stopped
    sections = {m["name"]: m for m in outbox.to("alice") if m["type"] == "card.section"}
    assert {n: m["status"] for n, m in sections.items()} == {"customer": "unavailable", "balance": "unavailable",
                                                                "credit": "unavailable"}
    assert sections["balance"]["reason"] == "the instance looking it up stopped"
    await settle(registry)
    stored = await registry.store.get("c1")
    assert stored is not None and stored.pending() == [] and stored.due() is None
