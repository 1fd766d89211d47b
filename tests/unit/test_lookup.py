"""The lookup: identity, parallel sections, timeouts and failures."""

import asyncio

from screenpop.lookup import Lookup
from screenpop.models import Section, SectionStatus
from screenpop.phone import normalize
from tests.unit.fakes import FakeConnector, demo_lookup, source


async def run(lookup: Lookup, number: str) -> list[Section]:
    out: list[Section] = []

    async def emit(s: Section) -> None:
        out.append(s)

    await lookup.run(normalize(number), None, emit)
    return out


def by_name(sections: list[Section]) -> dict[str, Section]:
    return {s.name: s for s in sections}


async def test_known_caller_fills_every_section() -> None:
    """One match: the customer section first, then every section with its data, all settled."""
    lookup, fakes = demo_lookup()
    out = await run(lookup, "+14155550100")
    assert out[0].name == "customer" and out[0].data["match"] == "one"
    assert out[0].data["customer"]["extra"] == {"company": "Whitfield"}
    got = by_name(out)
    assert got["balance"].status is SectionStatus.OK and got["balance"].data == {"balance": 10}
    assert got["credit"].data == {"terms": "Net 30"}
    assert fakes["balance"].calls[0].customer_id == "C1"
    assert all(s.latency_ms is not None for s in out)


async def test_unknown_caller_runs_no_section() -> None:
    """No match: the customer section is empty ('unknown caller'), the others empty without a fetch."""
    lookup, fakes = demo_lookup()
    got = by_name(await run(lookup, "+14155550199"))
    assert got["customer"].status is SectionStatus.EMPTY and got["customer"].reason == "unknown caller"
    assert got["balance"].status is SectionStatus.EMPTY
    assert fakes["balance"].calls == []


async def test_several_matches_list_the_candidates() -> None:
    """Two matches: the candidates are on the card and the sections wait for a choice."""
    lookup, _ = demo_lookup()
    got = by_name(await run(lookup, "+14155550111"))
    data = got["customer"].data
    assert data["match"] == "several"
    assert [c["id"] for c in data["candidates"]] == ["C2", "C3"]
    assert "select" in (got["balance"].reason or "")


async def test_failing_section_does_not_sink_the_others() -> None:
    """A connector error becomes that section's status; the rest of the card is fine."""
    lookup, _ = demo_lookup(fail="HTTP 500")
    got = by_name(await run(lookup, "+14155550100"))
    assert got["credit"].status is SectionStatus.ERROR and got["credit"].reason == "HTTP 500"
    assert got["balance"].status is SectionStatus.OK


async def test_hanging_section_times_out_and_fast_one_arrives_first() -> None:
    """A hanging source times out on its own while a fast section is emitted before it."""
    ident = FakeConnector("customers", {"+14155550100": {"id": "C1", "name": "Dana"}})
    fast = FakeConnector("balance", {"C1": {"balance": 1}})
    slow = FakeConnector("credit", {}, hang=True)
    lookup = Lookup(source(ident, "identity"), [source(slow, timeout_ms=50), source(fast)], deadline_s=5)
    out = await run(lookup, "+14155550100")
    assert [s.name for s in out] == ["customer", "balance", "credit"]
    assert out[2].status is SectionStatus.TIMEOUT


async def test_global_deadline_bounds_every_section() -> None:
    """Sections with long timeouts still settle (as timeout) when the card's deadline passes."""
    ident = FakeConnector("customers", {"+14155550100": {"id": "C1", "name": "Dana"}})
    slow = FakeConnector("credit", {}, hang=True)
    lookup = Lookup(source(ident, "identity"), [source(slow, timeout_ms=60_000)], deadline_s=0.05)
    async with asyncio.timeout(10):
        out = await run(lookup, "+14155550100")
    assert by_name(out)["credit"].status is SectionStatus.TIMEOUT


async def test_identity_failure_marks_sections_unavailable() -> None:
    """When the identity source fails, the customer section says error and the others unavailable."""
    ident = FakeConnector("customers", {}, fail="cannot connect to db:5432")
    bal = FakeConnector("balance", {})
    lookup = Lookup(source(ident, "identity"), [source(bal)], deadline_s=5)
    got = by_name(await run(lookup, "+14155550100"))
    assert got["customer"].status is SectionStatus.ERROR
    assert got["balance"].status is SectionStatus.UNAVAILABLE
    assert bal.calls == []


async def test_identity_rows_without_id_are_an_error() -> None:
    """An identity source that answers records without id/name gives an error, not a crash."""
    ident = FakeConnector("customers", {"+14155550100": [{"name": "no id"}]})
    lookup = Lookup(source(ident, "identity"), [], deadline_s=5)
    got = by_name(await run(lookup, "+14155550100"))
    assert got["customer"].status is SectionStatus.ERROR


def test_withheld_number_card_is_settled_at_once() -> None:
    """A withheld number gives one settled customer section and nothing to fetch."""
    lookup, _ = demo_lookup()
    sections = lookup.initial_sections(normalize("anonymous"))
    assert len(sections) == 1 and sections[0].status is SectionStatus.EMPTY
    assert sections[0].reason == "number withheld"
    pending = lookup.initial_sections(normalize("+14155550100"))
    assert [s.name for s in pending] == ["customer", "balance", "credit"]
    assert all(s.status is SectionStatus.PENDING for s in pending)


async def test_suffix_fallback_finds_a_customer_stored_without_country_code() -> None:
    """No exact match: the identity_fallback source gets the last digits and finds the customer."""
    ident = FakeConnector("customers", {})
    fb = FakeConnector("by_suffix", {})
    fb.answers = {}

    async def by_suffix(query):
        fb.calls.append(query)
        return [{"id": "C9", "name": "Stored Nationally"}] if query.suffix == "5550100" else None

    fb.fetch = by_suffix  # type: ignore[method-assign]
    lookup = Lookup(source(ident, "identity"), [], deadline_s=5, fallback=source(fb, "identity_fallback"))
    got = by_name(await run(lookup, "+14155550100"))
    assert got["customer"].data["customer"]["id"] == "C9"
    assert fb.calls[0].suffix == "5550100"


def test_several_matches_are_ranked_by_called_number_then_recent_activity() -> None:
    """The customer whose account lists the dialled number comes first, then the most recently active."""
    from screenpop.models import Customer

    lookup, _ = demo_lookup()
    old = Customer(id="1", name="Old", extra={"last_activity": "2024-01-01"})
    new = Customer(id="2", name="New", extra={"last_activity": "2026-10-01"})
    dnis = Customer(id="3", name="Line owner", extra={"dnis": "+18005550000, +18005550001", "last_activity": ""})
    assert [c.id for c in lookup.rank([old, new, dnis], "+18005550001")] == ["3", "2", "1"]
    assert [c.id for c in lookup.rank([old, new], None)] == ["2", "1"]
