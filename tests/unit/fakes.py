"""In-memory stand-ins for unit tests of the call flow (connectors and the outbox)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from connectors.base import Connector, ConnectorError
from screenpop.config import ConnectorConfig
from screenpop.lookup import Lookup
from screenpop.models import LookupQuery
from screenpop.protocol import Message
from screenpop.sources import Source


class FakeConnector(Connector):
    """Answers from a dict keyed by phone or customer id; can fail, hang, or wait for a gate."""

    kind = "fake"

    def __init__(self, name: str, answers: dict[str, Any], *, fail: str | None = None, hang: bool = False,
                 gate: asyncio.Event | None = None) -> None:
        super().__init__(name, Connector.Options())
        self.answers, self.fail, self.hang, self.gate = answers, fail, hang, gate
        self.calls: list[LookupQuery] = []

    async def fetch(self, query: LookupQuery) -> Any:
        """Answer from the table."""
        self.calls.append(query)
        if self.gate is not None:
            await self.gate.wait()
        if self.hang:
            await asyncio.Event().wait()
        if self.fail:
            raise ConnectorError(self.fail)
        return self.answers.get(query.customer_id or query.phone)

    async def ping(self) -> None:
        """Always reachable."""


def source(connector: FakeConnector, role: str = "section", timeout_ms: int = 500) -> Source:
    cfg = ConnectorConfig(name=connector.name, kind="fake", role=role, timeout_ms=timeout_ms)
    return Source(config=cfg, connector=connector)


CUSTOMERS = {
    "+14155550100": [{"id": "C1", "name": "Dana Whitfield", "phone": "+14155550100", "company": "Whitfield"}],
    "+14155550111": [{"id": "C2", "name": "Ann Lee"}, {"id": "C3", "name": "Ben Lee"}],
}


def demo_lookup(**section_kw: Any) -> tuple[Lookup, dict[str, FakeConnector]]:
    """A lookup with an identity source and balance + credit sections."""
    ident = FakeConnector("customers", CUSTOMERS)
    balance = FakeConnector("balance", {"C1": {"balance": 10}, "C2": {"balance": 2}, "C3": {"balance": 3}})
    credit = FakeConnector("credit", {"C1": {"terms": "Net 30"}}, **section_kw)
    lookup = Lookup(source(ident, "identity"), [source(balance), source(credit)], deadline_s=5)
    return lookup, {"customers": ident, "balance": balance, "credit": credit}


class RecordingOutbox:
    """Collects (recipients, message) instead of publishing."""

    def __init__(self) -> None:
        self.sent: list[tuple[list[str], dict[str, Any]]] = []

    async def send(self, recipients: Any, message: Message) -> None:
        to = sorted(set(recipients))
        if not to:
            return
        body = json.loads(message.text)  # valid JSON matching its envelope's header
        assert body["type"] == message.kind, (body["type"], message.kind)
        assert message.call_id == body.get("call_id", body.get("call", {}).get("call_id")), message.call_id
        self.sent.append((to, body))

    def to(self, agent: str) -> list[dict[str, Any]]:
        return [m for r, m in self.sent if agent in r]

    def types(self, agent: str) -> list[str]:
        return [m["type"] for m in self.to(agent)]
