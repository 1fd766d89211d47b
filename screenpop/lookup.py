"""The lookup: caller's number -> customer -> every section in parallel.

    1. the identity source finds the customer(s) for the E.164 number
    2. every section source runs at once, by customer id, each under its own timeout
    3. all of it under one deadline from the start of the lookup

`begin` settles at once what an in-process cache holds (no I/O, no waiting), so a repeat caller's card
can leave whole; the returned `rest` fetches the others, handing each to `emit` the moment it settles.
A failure or a timeout becomes that section's status. Nothing here raises into the caller for a source's
fault.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from connectors.base import CannotSearch, ConnectorError
from screenpop.models import CUSTOMER_SECTION, Caller, Customer, LookupQuery, Section, SectionStatus, View
from screenpop.sources import Fetched, Source

log = logging.getLogger("screenpop.lookup")

CUSTOMER = CUSTOMER_SECTION  # (the name other modules import from here)
CUSTOMER_VIEW = View(kind="customer")
Emit = Callable[[Section], Awaitable[None]]


def _no_match() -> dict[str, Any]:
    return {"match": "none", "customer": None, "candidates": []}


@dataclass(slots=True)
class Begun:
    """A lookup as it starts: the sections settled at hand, and what is left to fetch (None: nothing)."""

    settled: list[Section]
    rest: Callable[[Emit], Awaitable[None]] | None


def _customer_section(**fields: Any) -> Section:
    return Section(name=CUSTOMER_SECTION, title="Customer", view=CUSTOMER_VIEW, **fields)


def _customers(rows: Any) -> list[Customer]:
    """Identity rows -> customers; each row needs `id` and `name`, the rest goes to `extra`."""
    if rows is None:
        return []
    if isinstance(rows, dict):
        rows = [rows]
    if not isinstance(rows, list):
        raise ConnectorError(f"identity source answered {type(rows).__name__}, expected records")
    out = []
    for row in rows:
        if not isinstance(row, dict) or row.get("id") in (None, "") or not row.get("name"):
            raise ConnectorError("identity record lacks an id or a name")
        extra = {k: v for k, v in row.items() if k not in ("id", "name", "phone")}
        phone = row.get("phone")
        out.append(Customer(id=str(row["id"]), name=str(row["name"]),
                            phone=str(phone) if phone else None, extra=extra))
    return out


class Lookup:
    """Runs lookups against the configured sources; one instance serves every call."""

    def __init__(self, identity: Source | None, sections: list[Source], deadline_s: float, *,
                 fallback: Source | None = None, suffix_digits: int = 7, rank_called_field: str = "dnis",
                 rank_activity_field: str = "last_activity") -> None:
        self.identity = identity
        self.fallback = fallback
        self.sections = sections
        self.deadline_s = deadline_s
        self.suffix_digits = suffix_digits
        self.rank_called_field = rank_called_field
        self.rank_activity_field = rank_activity_field

    @property
    def sources(self) -> list[Source]:
        """Every source: identity, fallback, sections."""
        return [s for s in (self.identity, self.fallback) if s is not None] + self.sections

    def initial_sections(self, caller: Caller) -> list[Section]:
        """The sections a new card starts with: settled at once when there is no number to look up."""
        if caller.status != "ok":
            reason = "number withheld" if caller.status == "withheld" else "not a valid phone number"
            return [_customer_section(status=SectionStatus.EMPTY, reason=reason, data=_no_match())]
        source = self.identity.config.name if self.identity else ""
        return [_customer_section(source=source), *(s.pending() for s in self.sections)]

    def begin(self, caller: Caller, called: str | None, deadline_s: float | None = None) -> Begun:
        """Start a lookup: settle now what the sources have at hand (`Source.at_hand`: an in-process cache,
        no I/O), and say what is left to fetch, all of it within `deadline_s` (default: the configured
        deadline). Nothing here waits."""
        if caller.status != "ok":
            return Begun([], None)  # `initial_sections` are settled already
        assert caller.e164 is not None
        deadline = time.monotonic() + (self.deadline_s if deadline_s is None else deadline_s)
        query = LookupQuery(phone=caller.e164, raw=caller.raw, called=called)
        if self.identity is None:
            customer = _customer_section(status=SectionStatus.UNAVAILABLE, reason="no identity source configured",
                                         data=_no_match())
            return self._sections_at_hand(query, customer, deadline)
        exact = self.identity.at_hand(query)
        if exact is None:
            return Begun([], functools.partial(self._run, query, deadline, None))
        result, customers = self._match(exact)
        if self._needs_fallback(result, customers):
            assert self.fallback is not None
            fb = self.fallback.at_hand(self._suffix_query(query))
            if fb is None:  # the exact match was at hand, the fallback is not: fetch it, reuse the match
                return Begun([], functools.partial(self._run, query, deadline, exact))
            result, customers = self._either(result, customers, *self._match(fb))
        customer, customers = self._conclude(result, customers, query.called)
        if len(customers) == 1:
            query = query.model_copy(update={"customer_id": customers[0].id})
            return self._sections_at_hand(query, customer, deadline)
        return Begun([customer, *self.unmatched(customer, customers)], None)

    async def run(self, caller: Caller, called: str | None, emit: Emit, deadline_s: float | None = None) -> None:
        """Identify the caller, then fill every section; each settled section goes to `emit`."""
        begun = self.begin(caller, called, deadline_s)
        for section in begun.settled:
            await emit(section)
        if begun.rest is not None:
            await begun.rest(emit)

    def _sections_at_hand(self, query: LookupQuery, customer: Section, deadline: float) -> Begun:
        settled, left = [customer], []
        for source in self.sections:
            section = source.at_hand(query)
            if section is None:
                left.append(source)
            else:
                settled.append(section)
        rest = functools.partial(self.run_sections, query, deadline=deadline, sources=left) if left else None
        return Begun(settled, rest)

    async def _run(self, query: LookupQuery, deadline: float, exact: Section | None, emit: Emit) -> None:
        """The lookup from the identity on (`exact`: the identity source's answer when it was at hand)."""
        section, customers = await self._identify(query, deadline, exact)
        await emit(section)
        if len(customers) == 1:
            query = query.model_copy(update={"customer_id": customers[0].id})
            await self.run_sections(query, emit, deadline)
            return
        for s in self.unmatched(section, customers):
            await emit(s)

    def unmatched(self, customer: Section, customers: list[Customer]) -> list[Section]:
        """Every section when there is not exactly one customer: nothing to look up for them."""
        if customer.status in (SectionStatus.OK, SectionStatus.EMPTY):
            status = SectionStatus.EMPTY
            reason = "unknown caller" if not customers else "several customers match: select one"
        else:
            status, reason = SectionStatus.UNAVAILABLE, "the customer could not be identified"
        return [s.pending().model_copy(update={"status": status, "reason": reason}) for s in self.sections]

    async def _identify(self, query: LookupQuery, deadline: float,
                        exact: Section | None = None) -> tuple[Section, list[Customer]]:
        """Exact number first; when nothing matches, the last-digits fallback; several matches ranked."""
        assert self.identity is not None
        if exact is None:
            exact = (await self.identity.fetch(query, deadline)).section
        result, customers = self._match(exact)
        if self._needs_fallback(result, customers):
            assert self.fallback is not None
            fb = (await self.fallback.fetch(self._suffix_query(query), deadline)).section
            result, customers = self._either(result, customers, *self._match(fb))
        return self._conclude(result, customers, query.called)

    def _needs_fallback(self, result: Section, customers: list[Customer]) -> bool:
        return (not customers and self.fallback is not None
                and result.status in (SectionStatus.OK, SectionStatus.EMPTY))

    def _suffix_query(self, query: LookupQuery) -> LookupQuery:
        digits = "".join(ch for ch in query.phone if ch.isdigit())
        return query.model_copy(update={"suffix": digits[-self.suffix_digits:]})

    @staticmethod
    def _either(result: Section, customers: list[Customer], fb: Section,
                fb_customers: list[Customer]) -> tuple[Section, list[Customer]]:
        """The fallback's answer when it found someone or failed, else the exact match's."""
        if fb_customers or fb.status not in (SectionStatus.OK, SectionStatus.EMPTY):
            return fb, fb_customers
        return result, customers

    def _conclude(self, result: Section, customers: list[Customer],
                  called: str | None) -> tuple[Section, list[Customer]]:
        """The customer section for these matches (ranked), with its `match` data."""
        customers = self.rank(customers, called)
        dumped = [c.model_dump(mode="json") for c in customers]
        if result.status not in (SectionStatus.OK, SectionStatus.EMPTY):
            data: dict[str, Any] = _no_match()
        elif not customers:
            result.status, result.reason = SectionStatus.EMPTY, "unknown caller"
            data = _no_match()
        elif len(customers) == 1:
            result.status = SectionStatus.OK
            data = {"match": "one", "customer": dumped[0], "candidates": []}
        else:
            result.status = SectionStatus.OK
            data = {"match": "several", "customer": None, "candidates": dumped}
        result.data = data
        return result, customers

    @staticmethod
    def _match(result: Section) -> tuple[Section, list[Customer]]:
        """An identity source's section as the customer section, with the customers it names."""
        result.name, result.title, result.view = CUSTOMER_SECTION, "Customer", CUSTOMER_VIEW
        if result.status not in (SectionStatus.OK, SectionStatus.EMPTY, SectionStatus.STALE):
            return result, []
        try:
            customers = _customers(result.data)
        except ConnectorError as err:
            result.status, result.reason = SectionStatus.ERROR, str(err)
            return result, []
        if result.status is SectionStatus.STALE:
            result.status = SectionStatus.OK
        return result, customers

    async def search(self, text: str, limit: int = 10) -> list[Customer]:
        """The agent's search by hand on the identity source (`Connector.search`), within its timeout.
        Raises LookupError when there is no identity source or its kind cannot search (the configuration's
        doing), ConnectorError (or TimeoutError) when it fails."""
        if self.identity is None:
            raise LookupError("no identity source is configured")
        source = self.identity
        try:
            rows = await asyncio.wait_for(source.connector.search(text, limit), max(source.timeout_s, 2.0))
        except CannotSearch as err:
            raise LookupError(str(err)) from None
        return _customers(rows[:limit])

    def rank(self, customers: list[Customer], called: str | None) -> list[Customer]:
        """Best first: the record listing the called number (DNIS), then the most recent activity."""
        if len(customers) < 2:
            return customers

        def key(c: Customer) -> tuple[int, str]:
            listed = c.extra.get(self.rank_called_field)
            if isinstance(listed, str):
                listed = [x.strip() for x in listed.split(",")]
            owns_called = bool(called) and isinstance(listed, list) and called in listed
            activity = str(c.extra.get(self.rank_activity_field) or "")
            return (0 if owns_called else 1, "".join(chr(0x10FFFF - ord(ch)) for ch in activity))

        return sorted(customers, key=key)

    async def run_sections(self, query: LookupQuery, emit: Emit, deadline: float | None = None,
                           sources: list[Source] | None = None) -> None:
        """Fetch every section (or those of `sources`) at once; emit each as it settles; all settle by the
        deadline. A stale cached section is emitted at once, and again when its background refresh lands."""
        if deadline is None:
            deadline = time.monotonic() + self.deadline_s
        async with asyncio.TaskGroup() as tg:
            for s in self.sections if sources is None else sources:
                tg.create_task(_one(s, query, emit, deadline))


async def _one(source: Source, query: LookupQuery, emit: Emit, deadline: float) -> None:
    """One section: fetched, emitted, and emitted again when a stale value's refresh lands."""
    fetched: Fetched = await source.fetch(query, deadline)
    await emit(fetched.section)
    if fetched.refresh is not None:
        try:
            await emit(await fetched.refresh)
        except Exception as err:  # the stale value stays; the refresh failure is only logged
            log.info("refresh of %s failed: %s", source.name, err)
