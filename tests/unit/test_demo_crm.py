"""The demo's CRM (a real aiohttp server on loopback): one entry per Idempotency-Key, down on request,
record pages escaped; and the demo's past calls."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from screenpop.demo.crm import make_crm_app
from screenpop.demo.data import KNOWN_NUMBER
from screenpop.demo.history import past_calls
from tests.conftest import free_port


@pytest.fixture
async def crm() -> AsyncIterator[str]:
    """The CRM on a free port."""
    runner = web.AppRunner(make_crm_app())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_the_crm_keeps_one_entry_per_key_and_fails_while_down(crm: str) -> None:
    """The same key twice is one entry (200 the second time); no key is a 400; while down every write is 503."""
    async with aiohttp.ClientSession() as s:
        entry = {"customer_id": "C1001", "notes": "<b>hi</b>"}
        first = await s.post(f"{crm}/api/calls", json=entry, headers={"Idempotency-Key": "k1"})
        again = await s.post(f"{crm}/api/calls", json={**entry, "notes": "changed"}, headers={"Idempotency-Key": "k1"})
        assert (first.status, again.status) == (201, 200)
        assert (await again.json())["notes"] == "<b>hi</b>"
        assert (await s.post(f"{crm}/api/calls", json=entry)).status == 400
        assert (await (await s.post(f"{crm}/admin/down", json={"down": True})).json()) == {"down": True}
        assert (await s.post(f"{crm}/api/calls", json=entry, headers={"Idempotency-Key": "k2"})).status == 503
        assert (await s.post(f"{crm}/admin/down", json={"down": "yes"})).status == 400
        await s.post(f"{crm}/admin/down", json={"down": False})
        assert (await s.post(f"{crm}/api/calls", json=entry, headers={"Idempotency-Key": "k2"})).status == 201
        listed = await (await s.get(f"{crm}/api/calls?customer_id=C1001")).json()
        assert [e["idempotency_key"] for e in listed] == ["k1", "k2"]
        page = await (await s.get(f"{crm}/customers/C1001")).text()
        assert "&lt;b&gt;hi&lt;/b&gt;" in page and "<b>hi</b>" not in page
        assert (await s.get(f"{crm}/customers/nobody")).status == 404


def test_demo_customers_have_past_calls() -> None:
    """The known caller's customer has three past calls; a dozen others one to three; the same every time."""
    calls = past_calls()
    known = [c for c in calls if c.phone == KNOWN_NUMBER]
    assert len(known) == 3 and all(c.notes and c.disposition for c in known)
    assert len({c.customer_id for c in calls}) >= 10
    assert [c.key for c in calls] == [c.key for c in past_calls()]
    assert len({c.key for c in calls}) == len(calls)
