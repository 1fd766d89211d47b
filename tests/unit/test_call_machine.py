"""The call state machine as a plain function: (record, change, now) -> (record, effects)."""

from __future__ import annotations

from screenpop.callstore.machine import (
    STOPPED,
    CallRecord,
    Change,
    Drop,
    Event,
    Outcome,
    Renew,
    Select,
    Settle,
    Sweep,
    Wrapped,
    new_record,
    settle_at_hand,
    transition,
)
from screenpop.models import Caller, Card, Customer, EventKind, Section, SectionStatus

T = 1000.0


def fresh(call_id: str = "c1") -> CallRecord:
    return new_record(Card(call_id=call_id, caller=Caller(raw="+14155550100", e164="+14155550100"),
                           sections=[Section(name="customer"), Section(name="balance")]))


def run(record: CallRecord | None, *changes: Change, now: float = T) -> tuple[CallRecord | None, list[Outcome]]:
    outs = []
    for change in changes:
        out = transition("c1", record, change, now, lease_s=3, deadline_s=5)
        record = out.record
        outs.append(out)
    return record, outs


def ev(kind: str, *agents: str, at: float | None = None, token: str = "a/1") -> Event:
    return Event(EventKind(kind), agents, at=at, token=token)


def said(out: Outcome) -> list[tuple[str, tuple[str, ...], object]]:
    return [(e.kind, e.to, e.detail if not isinstance(e.detail, Section) else e.detail.name) for e in out.effects]


def test_the_first_event_with_a_number_starts_the_one_lookup() -> None:
    """offered gives the lookup to its token with a lease and a deadline; a later event starts no other."""
    rec, (offered, ringing) = run(fresh(), ev("offered"), ev("ringing", "alice", token="b/1"))
    assert offered.start == "fresh" and ringing.start is None
    assert rec is not None and rec.lookup == "a/1" and (rec.lease_until, rec.deadline) == (T + 3, T + 5)
    assert rec.due() == T + 3


def test_a_withheld_number_starts_no_lookup() -> None:
    """No number: no lookup, nothing due."""
    rec = new_record(Card(call_id="c1", caller=Caller(raw="anonymous", status="withheld")))
    rec, (out,) = run(rec, ev("ringing", "alice"))
    assert out.start is None and rec is not None and rec.lookup is None and rec.due() is None


def test_without_at_a_queue_may_ring_an_agent_again() -> None:
    """Events without `at` cannot be told from repeats: ringing bob, withdrawn, ringing bob rings him twice."""
    _, outs = run(fresh(), ev("ringing", "bob"), ev("withdrawn", "bob"), ev("ringing", "bob"))
    assert [said(o)[0][0] for o in outs] == ["ringing", "withdrawn", "ringing"]


def test_retry_after_answer_and_transfer() -> None:
    """A ringing that names who answered is a retry (nothing); one that does not is a transfer, and its answer
    takes the card from the first agent."""
    rec, outs = run(fresh(), ev("ringing", "alice", "bob"), ev("answered", "alice"), ev("ringing", "alice", "bob"),
                    ev("ringing", "bob"), ev("answered", "bob"))
    assert not outs[2].changed
    assert said(outs[3]) == [("ringing", ("bob",), None)]
    assert said(outs[4]) == [("answered", ("bob",), "bob"), ("withdrawn", ("alice",), "transferred to bob")]
    assert rec is not None and rec.card.transferred_from == "alice" and rec.ringing == ["bob"]


def test_withdrawn_never_takes_the_answered_call() -> None:
    """A late 'stopped ringing' for the agent who answered changes nothing."""
    _, outs = run(fresh(), ev("ringing", "alice"), ev("answered", "alice"), ev("withdrawn", "alice"))
    assert not outs[2].changed


def test_settles_are_taken_only_from_the_owning_run() -> None:
    """A section from another run is refused; one from the owner renews its lease and goes to the ringing."""
    rec, outs = run(fresh(), ev("ringing", "alice"),
                    Settle("z/9", Section(name="balance", status=SectionStatus.OK)),
                    Settle("a/1", Section(name="balance", status=SectionStatus.OK)), now=T + 1)
    assert outs[1].refused and said(outs[2]) == [("section", ("alice",), "balance")]
    assert rec is not None and rec.lease_until == T + 4


def test_sweep_takes_over_after_the_lease_and_closes_at_the_deadline() -> None:
    """Before the lease ends a sweep does nothing; after it the lookup is the sweeper's ("resume", the deadline
    kept); at the deadline every pending section becomes unavailable and the run is fenced off."""
    rec, _ = run(fresh(), ev("ringing", "alice"))
    rec, (early,) = run(rec, Sweep("b/1"), now=T + 2)
    assert not early.changed
    rec, (takeover,) = run(rec, Sweep("b/1"), now=T + 3)
    assert takeover.start == "resume" and rec is not None and rec.lookup == "b/1" and rec.deadline == T + 5
    rec, (renew_old, renew) = run(rec, Renew("a/1"), Renew("b/1"), now=T + 4)
    assert renew_old.refused and renew.changed
    rec, (closing,) = run(rec, Sweep("c/1"), now=T + 5)
    assert [(k, to, name) for k, to, name in said(closing)] == [("section", ("alice",), "customer"),
                                                                ("section", ("alice",), "balance")]
    assert rec is not None and rec.pending() == [] and rec.due() is None
    assert {s.reason for s in rec.card.sections} == {STOPPED}
    _, (late,) = run(rec, Settle("b/1", Section(name="balance", status=SectionStatus.OK)), now=T + 6)
    assert late.refused


def test_select_refusals_and_a_new_run() -> None:
    """select: only an agent who has the card, only a candidate, only once the lookup settled; then the
    customer is set, the other sections pending again under the new run."""
    rec = fresh()
    rec.card.candidates = [Customer(id="C2", name="Ann"), Customer(id="C3", name="Ben")]
    rec, _ = run(rec, ev("ringing", "alice"))
    _, (busy,) = run(rec, Select("alice", "C3", "a/2"))
    assert busy.refused == "the lookup is still running"
    rec, _ = run(rec, Settle("a/1", Section(name="customer", status=SectionStatus.OK,
                                            data={"match": "several", "customer": None,
                                                  "candidates": [{"id": "C2", "name": "Ann"},
                                                                 {"id": "C3", "name": "Ben"}]})),
                 Settle("a/1", Section(name="balance", status=SectionStatus.EMPTY)))
    _, (stranger,) = run(rec, Select("bob", "C3", "a/2"))
    _, (nobody,) = run(rec, Select("alice", "C9", "a/2"))
    assert stranger.refused == "no such call for this agent"
    assert nobody.refused == "that customer is not among the candidates"
    rec, (chosen,) = run(rec, Select("alice", "C3", "a/2"), now=T + 10)
    assert chosen.start == "select" and rec is not None and rec.lookup == "a/2" and rec.deadline == T + 15
    assert rec.card.customer is not None and rec.card.customer.id == "C3"
    assert [s.name for s in rec.pending()] == ["balance"]


def test_at_hand_sections_reach_who_had_the_card_already() -> None:
    """Sections at hand put on the card in the change that rings someone are in their card, and sent as
    sections to the agents who had the card before."""
    rec, _ = run(new_record(Card(call_id="c1", caller=Caller(raw="x", status="invalid"))), ev("ringing", "alice"))
    assert rec is not None
    rec.card.caller = Caller(raw="+14155550100", e164="+14155550100")
    rec.card.sections = [Section(name="customer"), Section(name="balance")]
    _, (out,) = run(rec, ev("ringing", "alice", "bob"))
    settle_at_hand("c1", out, [Section(name="balance", status=SectionStatus.OK)])
    assert said(out) == [("ringing", ("bob",), None), ("section", ("alice",), "balance")]


def test_drop_and_ended_leave_a_tombstone() -> None:
    """Drop closes like ended; after it everything is refused; an ended for an unknown call is a tombstone."""
    rec, (dropped, later) = run(fresh(), Drop("too many"), ev("ringing", "alice"))
    assert dropped.changed and later.refused == "the call ended"
    tomb, (first,) = run(None, ev("ended"))
    assert tomb is not None and tomb.ended and first.changed


def test_the_record_survives_its_json() -> None:
    """What the Redis store writes reads back equal."""
    rec, _ = run(fresh(), ev("ringing", "alice", at=T), ev("answered", "alice", at=T + 1))
    assert rec is not None
    assert CallRecord.from_json(rec.to_json()) == rec


def test_the_wrapup_is_owed_by_whoever_has_the_call_answered_when_it_ends() -> None:
    """A call answered by alice, transferred to bob who answers, then ended: bob owes its wrap-up, not alice;
    one that ends or is dropped before anyone answered is owed by nobody, one dropped after is; Wrapped clears
    only the owner's."""
    rec, _ = run(fresh(), ev("ringing", "alice"), ev("answered", "alice"), ev("ringing", "bob"),
                 ev("answered", "bob"), ev("ended"))
    assert rec is not None and rec.wrapup == ["bob"] and rec.holders() == ["bob"]
    rec, (alice, bob, again) = run(rec, Wrapped("alice"), Wrapped("bob"), Wrapped("bob"))
    assert alice.refused and not alice.changed and bob.changed and again.refused and rec and rec.holders() == []
    rec, _ = run(fresh(), ev("ringing", "alice", "bob"), ev("ended"))
    assert rec is not None and rec.wrapup == []
    rec, _ = run(fresh(), ev("ringing", "alice"), Drop("dropped: too many calls in progress"))
    assert rec is not None and rec.wrapup == []
    rec, _ = run(fresh(), ev("answered", "alice"), Drop("dropped: no end reported in time"))
    assert rec is not None and rec.wrapup == ["alice"]
