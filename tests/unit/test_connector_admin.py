"""ConnectorAdmin alone: it needs only the file's config, a store, a source factory, a lookup slot, an announcer."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from types import SimpleNamespace
from typing import Any

import pytest

from connectors.base import Connector
from screenpop.admin import ConnectorAdmin
from screenpop.config import parse_config
from screenpop.models import LookupQuery, Section
from screenpop.sources import Source
from screenpop.store import MemoryStore
from screenpop.wiring import SourceFactory
from tests.unit.test_plugins import with_entry_points

EVENTS: list[str] = []


class RecordingConnector(Connector):
    """A connector kind that records its start and close."""

    kind = "recording"

    async def start(self) -> None:
        EVENTS.append(f"start {self.name}")

    async def close(self) -> None:
        EVENTS.append(f"close {self.name}")

    async def fetch(self, query: LookupQuery) -> dict[str, Any]:
        return {"name": self.name}

    async def ping(self) -> None:
        """Always reachable."""


def recording(name: str) -> dict[str, Any]:
    return {"name": name, "kind": "recording", "role": "section"}


async def test_a_change_is_built_by_the_factory_put_in_the_slot_and_announced(monkeypatch: pytest.MonkeyPatch) -> None:
    """put() builds the source with the factory's observer, starts it, swaps the slot's lookup, announces once;
    delete() and close() close what was started."""
    with_entry_points(monkeypatch, EntryPoint("recording", f"{__name__}:RecordingConnector", "screenpop.connectors"))
    EVENTS.clear()
    config = parse_config({"connectors": [recording("file")]})
    def observer(source: Source, section: Section) -> None:  # pragma: no cover - nothing is fetched here
        pass

    announced: list[int] = []

    async def announce() -> None:
        announced.append(1)

    factory = SourceFactory(observer=observer)
    slot = SimpleNamespace(lookup=factory.lookup(config))  # as build_services does: one factory builds them all
    admin = ConnectorAdmin(config, MemoryStore(), factory, slot, announce)
    await admin.reload()
    assert [s.name for s in slot.lookup.sources] == ["file"] and EVENTS == ["start file"]
    file_source = slot.lookup.sources[0]

    cfg, created = await admin.put("added", recording("added"), actor="ada")
    assert created and cfg.kind == "recording" and announced == [1]
    assert [s.name for s in slot.lookup.sources] == ["file", "added"]
    assert slot.lookup.sources[0] is file_source  # unchanged: kept, not restarted
    assert all(s.observer is observer for s in slot.lookup.sources)
    assert EVENTS == ["start file", "start added"]

    assert await admin.delete("file", actor="ada") and announced == [1, 1]
    assert [s.name for s in slot.lookup.sources] == ["added"]
    await admin.close()  # the retired one and the one in use
    assert sorted(EVENTS[2:]) == ["close added", "close file"]
