"""SIGTERM of one of three instances under a steady stream of webhooks through HAProxy: no webhook fails."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import httpx
import pytest

from tests.cluster.harness import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]


async def test_sigterm_under_a_stream_of_webhooks_loses_none(cluster_factory: Callable[..., Cluster]) -> None:
    """20 events/s through HAProxy while instance 0 gets SIGTERM: every webhook is answered 202 (the drain's 503s
    and closed connections are retried by HAProxy on another instance), and instance 0 leaves the rotation."""
    cluster = cluster_factory(n=3)
    answers: list[int | str] = []
    stop = asyncio.Event()

    async def stream() -> None:
        async with cluster.webhooks() as hooks:
            while not stop.is_set():
                try:
                    r = await hooks.send(f"term-{uuid.uuid4().hex[:10]}", "offered")
                    answers.append(r.status_code)
                except httpx.HTTPError as err:
                    answers.append(type(err).__name__)
                await asyncio.sleep(0.05)

    sender = asyncio.create_task(stream())
    try:
        await asyncio.sleep(1)
        code, _ = await asyncio.to_thread(cluster.instances[0].terminate, 30)
        await asyncio.sleep(1)
    finally:
        stop.set()
        await sender
    assert code is not None and code != -9, cluster.instances[0].child.log_tail()
    assert len(answers) > 20 and set(answers) == {202}, [a for a in answers if a != 202]
    assert "draining" in cluster.instances[0].child.log()
