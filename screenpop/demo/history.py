"""The demo's past calls: a few wrap-ups per sample customer, already in screenpop's journal when it starts,
so the `history` section has something to show from the first call."""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
from datetime import UTC, date, datetime, time, timedelta

from screenpop.demo.data import ANCHOR, KNOWN_NUMBER, sample_data
from screenpop.journal import entry_key
from screenpop.journalstore import Row, SqlJournalStore
from screenpop.models import WrapUp

_NOTES = [
    ("resolved", "Asked about the delivery date of the last order; confirmed it ships this week."),
    ("callback", "Wants a quote for 20 more units; call back with volume pricing."),
    ("sale", "Ordered a replacement part over the phone."),
    ("complaint", "Invoice showed the wrong VAT number; forwarded to accounting."),
    ("resolved", "Password reset for the customer portal."),
]
_AGENTS = {"alice": "Alice Martin", "bob": "Bob Chen"}


def past_calls(per_customer: int = 3, customers: int = 12) -> list[WrapUp]:
    """Wrap-ups of earlier calls: the known caller's customer and the first `customers` others, each with
    1 to `per_customer` calls in the two months before the sample data's "today" (the same every time)."""
    rng = random.Random(14)
    data = sample_data()
    chosen = [c for c in data.customers if c.phone == KNOWN_NUMBER] + list(data.customers[:customers])
    out: list[WrapUp] = []
    seen: set[str] = set()
    for c in chosen:
        if c.id in seen:
            continue
        seen.add(c.id)
        for n in range(per_customer if c.phone == KNOWN_NUMBER else rng.randint(1, per_customer)):
            disposition, notes = _NOTES[rng.randrange(len(_NOTES))]
            day: date = ANCHOR - timedelta(days=rng.randint(2, 60))
            at = datetime.combine(day, time(rng.randint(8, 17), rng.choice((5, 20, 35, 50))), tzinfo=UTC)
            agent = rng.choice(sorted(_AGENTS))
            call_id = f"past-{c.id}-{n}"
            out.append(WrapUp(key=entry_key(call_id, agent), call_id=call_id, agent=agent,
                              agent_name=_AGENTS[agent], customer_id=c.id, customer_name=c.name, phone=c.phone,
                              disposition=disposition, notes=notes, saved_at=at,
                              follow_up=day + timedelta(days=7) if disposition == "callback" else None))
    return out


def seed_journal(state_url: str) -> int:
    """Put the past calls in the journal of the state store at `state_url` (as saved; again is harmless)."""

    async def seed() -> int:
        store = SqlJournalStore(state_url)
        await store.start()
        try:
            for entry in past_calls():
                await store.put(Row(entry=entry, state="saved", delivered_at=entry.saved_at.timestamp()))
        finally:
            await store.close()
        return len(past_calls())

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # its own loop, also when called inside one
        return pool.submit(lambda: asyncio.run(seed())).result()
