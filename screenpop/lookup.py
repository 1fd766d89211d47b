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
from dataclasses import dataclass
from typing import Any

from connectors.base import Connector, ConnectorError
from screenpop.config import ConnectorConfig
from screenpop.models import Caller, Customer, LookupQuery, Section, SectionStatus

log = logging.getLogger("screenpop.lookup")

CUSTOMER = "customer"
Emit = Callable[[Section], Awaitable[None]]


@dataclass
class Source:
    """A configured connector: its settings and the running instance."""

    config: ConnectorConfig
    connector: Connector

    @property
    def timeout_s(self) -> float:
        return self.config.timeout_ms / 1000


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

    def __init__(self, identity: Source | None, sections: list[Source], deadline_s: float) -> None:
        self.identity = identity
        self.sections = sections
        self.deadline_s = deadline_s

    def initial_sections(self, caller: Caller) -> list[Section]:
        """The sections a new card starts with: settled at once when there is no number to look up."""
        if caller.status != "ok":
            reason = "number withheld" if caller.status == "withheld" else "not a valid phone number"
            return [Section(name=CUSTOMER, title="Customer", status=SectionStatus.EMPTY, reason=reason,
                            data={"match": "none", "customer": None, "candidates": []})]
        source = self.identity.config.name if self.identity else ""
        return [Section(name=CUSTOMER, title="Customer", source=source), *map(self._pending, self.sections)]

    @staticmethod
    def _pending(s: Source) -> Section:
        return Section(name=s.config.section_name, title=s.config.section_title, source=s.config.name)

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
            await emit(self._pending(s).model_copy(update={"status": status, "reason": reason}))

    async def _identify(self, query: LookupQuery, deadline: float) -> tuple[Section, list[Customer]]:
        assert self.identity is not None
        result = await self._fetch(self.identity, query, deadline)
        result.name, result.title = CUSTOMER, "Customer"
        if result.status != SectionStatus.OK and result.status != SectionStatus.EMPTY:
            result.data = {"match": "none", "customer": None, "candidates": []}
            return result, []
        try:
            customers = _customers(result.data)
        except ConnectorError as err:
            result.status, result.reason = SectionStatus.ERROR, str(err)
            result.data = {"match": "none", "customer": None, "candidates": []}
            return result, []
        dumped = [c.model_dump(mode="json") for c in customers]
        if not customers:
            result.status, result.reason = SectionStatus.EMPTY, "unknown caller"
            result.data = {"match": "none", "customer": None, "candidates": []}
        elif len(customers) == 1:
            result.status = SectionStatus.OK
            result.data = {"match": "one", "customer": dumped[0], "candidates": []}
        else:
            result.status = SectionStatus.OK
            result.data = {"match": "several", "customer": None, "candidates": dumped}
        return result, customers

    async def run_sections(self, query: LookupQuery, emit: Emit, deadline: float | None = None) -> None:
        """Fetch every section at once; emit each as it settles; all settle by the deadline."""
        if deadline is None:
            deadline = time.monotonic() + self.deadline_s

        async def one(source: Source) -> None:
            section = await self._fetch(source, query, deadline)
            await emit(section)

        async with asyncio.TaskGroup() as tg:
            for s in self.sections:
                tg.create_task(one(s))

    async def _fetch(self, source: Source, query: LookupQuery, deadline: float) -> Section:
        """One source, bounded by its timeout and the deadline; every outcome becomes a Section."""
        section = self._pending(source)
        budget = min(source.timeout_s, deadline - time.monotonic())
        start = time.perf_counter()
        try:
            if budget <= 0:
                raise TimeoutError
            async with asyncio.timeout(budget):
                data = await source.connector.fetch(query)
        except TimeoutError:
            section.status, section.reason = SectionStatus.TIMEOUT, "no answer in time"
        except ConnectorError as err:
            section.status, section.reason = SectionStatus.ERROR, str(err)[:200] or "source failed"
        except Exception:  # a connector bug must not sink the card
            log.exception("connector %s failed", source.config.name)
            section.status, section.reason = SectionStatus.ERROR, "connector failed unexpectedly"
        else:
            empty = data is None or data == [] or data == {}
            section.status = SectionStatus.EMPTY if empty else SectionStatus.OK
            section.data = None if empty else data
        section.latency_ms = round((time.perf_counter() - start) * 1000, 1)
        return section
