"""The lookup: caller's number -> customer -> every section in parallel.

    1. the identity source finds the customer(s) for the E.164 number
    2. every section source runs at once, by customer id, each under its own timeout
    3. all of it under one deadline from the start of the lookup

Each section is handed to `emit` the moment it settles; a failure or a timeout becomes that section's
status. Nothing here raises into the caller for a source's fault.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from connectors.base import ConnectorError
from screenpop.models import Caller, Customer, LookupQuery, Section, SectionStatus
from screenpop.sources import Fetched, Source

log = logging.getLogger("screenpop.lookup")

CUSTOMER = "customer"
Emit = Callable[[Section], Awaitable[None]]


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
            return [Section(name=CUSTOMER, title="Customer", status=SectionStatus.EMPTY, reason=reason,
                            data={"match": "none", "customer": None, "candidates": []})]
        source = self.identity.config.name if self.identity else ""
        return [Section(name=CUSTOMER, title="Customer", source=source), *(s.pending() for s in self.sections)]

    async def run(self, caller: Caller, called: str | None, emit: Emit) -> None:
        """Identify the caller, then fill every section; each settled section goes to `emit`."""
        assert caller.e164 is not None
        deadline = time.monotonic() + self.deadline_s
        query = LookupQuery(phone=caller.e164, raw=caller.raw, called=called)
        if self.identity is None:
            await emit(Section(name=CUSTOMER, title="Customer", status=SectionStatus.UNAVAILABLE,
                               reason="no identity source configured",
                               data={"match": "none", "customer": None, "candidates": []}))
            await self.run_sections(query, emit, deadline)
            return
        section, customers = await self._identify(query, deadline)
        await emit(section)
        if len(customers) == 1:
            query = query.model_copy(update={"customer_id": customers[0].id})
            await self.run_sections(query, emit, deadline)
            return
        if section.status in (SectionStatus.OK, SectionStatus.EMPTY):
            status = SectionStatus.EMPTY
            reason = "unknown caller" if not customers else "several customers match: select one"
        else:
            status, reason = SectionStatus.UNAVAILABLE, "the customer could not be identified"
        for s in self.sections:
            await emit(s.pending().model_copy(update={"status": status, "reason": reason}))

    async def _identify(self, query: LookupQuery, deadline: float) -> tuple[Section, list[Customer]]:
        """Exact number first; when nothing matches, the last-digits fallback; several matches ranked."""
        assert self.identity is not None
        result, customers = await self._match(self.identity, query, deadline)
        if not customers and self.fallback is not None and result.status in (SectionStatus.OK, SectionStatus.EMPTY):
            digits = "".join(ch for ch in query.phone if ch.isdigit())
            suffix_query = query.model_copy(update={"suffix": digits[-self.suffix_digits:]})
            fb, customers = await self._match(self.fallback, suffix_query, deadline)
            if customers or fb.status not in (SectionStatus.OK, SectionStatus.EMPTY):
                result = fb
        customers = self.rank(customers, query.called)
        dumped = [c.model_dump(mode="json") for c in customers]
        if result.status not in (SectionStatus.OK, SectionStatus.EMPTY):
            data: dict[str, Any] = {"match": "none", "customer": None, "candidates": []}
        elif not customers:
            result.status, result.reason = SectionStatus.EMPTY, "unknown caller"
            data = {"match": "none", "customer": None, "candidates": []}
        elif len(customers) == 1:
            result.status = SectionStatus.OK
            data = {"match": "one", "customer": dumped[0], "candidates": []}
        else:
            result.status = SectionStatus.OK
            data = {"match": "several", "customer": None, "candidates": dumped}
        result.data = data
        return result, customers

    async def _match(self, source: Source, query: LookupQuery, deadline: float) -> tuple[Section, list[Customer]]:
        result = (await source.fetch(query, deadline)).section
        result.name, result.title = CUSTOMER, "Customer"
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

    async def run_sections(self, query: LookupQuery, emit: Emit, deadline: float | None = None) -> None:
        """Fetch every section at once; emit each as it settles; all settle by the deadline. A stale
        cached section is emitted at once, and again when its background refresh lands."""
        if deadline is None:
            deadline = time.monotonic() + self.deadline_s

        async with asyncio.TaskGroup() as tg:
            for s in self.sections:
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
