"""The Redis call store's routing: a change's messages go only to the instances holding a recipient's socket."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from screenpop import protocol
from screenpop.callstore import callstore_from_url
from screenpop.callstore.machine import CallRecord, Event, Outcome, new_record, transition
from screenpop.models import Caller, Card, EventKind

TTL = 120
Pair = tuple[Any, Any, str]  # two stores (instances ia, ib) and their agent channel


def _card(call_id: str) -> Card:
    return Card(call_id=call_id, caller=Caller(raw="+14155550100", e164="+14155550100", status="ok"))


def _ring(call_id: str, *agents: str) -> Any:
    def run(record: CallRecord | None) -> Outcome:
        record = record or new_record(_card(call_id))
        out = transition(call_id, record, Event(EventKind.RINGING, agents, token="t1"), time.time())
        out.changed = True
        return out
    return run


def _render(out: Outcome) -> list[str]:
    """One envelope per effect, to its recipients (as the registry renders them)."""
    return [protocol.envelope(sorted(e.to), protocol.Message(f"call.{e.kind}", e.call_id, json.dumps({"x": 1})))
            for e in out.effects]


class Listener:
    """A raw Redis subscription to some channels, recording what arrives on each."""

    def __init__(self, url: str, channels: list[str]) -> None:
        self.client, self.channels = Redis.from_url(url), channels
        self.got: dict[str, list[str]] = {c: [] for c in channels}

    async def __aenter__(self) -> Listener:
        self.pubsub = self.client.pubsub()
        await self.pubsub.subscribe(*self.channels)
        for _ in self.channels:
            while (m := await self.pubsub.get_message(timeout=2)) is None or m["type"] != "subscribe":
                pass
        return self

    async def settle(self) -> None:
        """Read what has arrived (until 0.3 s pass with nothing new)."""
        while (m := await self.pubsub.get_message(timeout=0.3)) is not None:
            if m["type"] == "message":
                kinds = [protocol.open_envelope(e)[1] for e in protocol.unbundle(m["data"].decode())]
                self.got[m["channel"].decode()].append("+".join(kinds))

    async def __aexit__(self, *exc: object) -> None:
        await self.pubsub.aclose()  # type: ignore[no-untyped-call]
        await self.client.aclose()


@pytest.fixture
async def pair(redis_url: str, prefix: str) -> AsyncIterator[Pair]:
    """Two connected stores on one Redis, instances `ia` and `ib`, and their agent channel."""
    ch = f"{prefix}.agents"
    a, b = (callstore_from_url(redis_url, ttl_s=TTL, prefix=prefix, channel=ch, instance=i) for i in ("ia", "ib"))
    await a.connect()
    await b.connect()
    try:
        yield a, b, ch
    finally:
        await a.close()
        await b.close()


@pytest.fixture
def prefix() -> str:
    return f"test-route-{uuid.uuid4().hex[:8]}"


async def test_a_message_goes_once_to_each_instance_holding_a_recipient(
        pair: Pair, redis_url: str) -> None:
    """A ring to alice (on b) and bob (on a) is published once on each instance's channel, nothing on the
    shared channel; a ring to carol, whose socket is nowhere, is published nowhere."""
    a, b, ch = pair
    assert (a.route, b.route) == (f"{ch}:ia", f"{ch}:ib")
    await b.present(["alice"])
    await a.present(["bob"])
    async with Listener(redis_url, [ch, f"{ch}:ia", f"{ch}:ib"]) as heard:
        await a.apply("c1", _ring("c1", "alice", "bob"), _render)
        await a.apply("c2", _ring("c2", "carol"), _render)
        await heard.settle()
    assert heard.got == {ch: [], f"{ch}:ia": ["call.ringing"], f"{ch}:ib": ["call.ringing"]}


async def test_an_agent_on_two_instances_gets_it_on_both_and_twice_on_none(
        pair: Pair, redis_url: str) -> None:
    """alice holds sockets on a and b: each instance's channel gets one copy, however many recipients of the
    message are there."""
    a, b, ch = pair
    await a.present(["alice", "bob"])
    await b.present(["alice"])
    async with Listener(redis_url, [f"{ch}:ia", f"{ch}:ib"]) as heard:
        await b.apply("c1", _ring("c1", "alice", "bob"), _render)
        await heard.settle()
    assert heard.got == {f"{ch}:ia": ["call.ringing"], f"{ch}:ib": ["call.ringing"]}


async def test_presence_ends_unless_renewed(redis_url: str, prefix: str) -> None:
    """Once its presence time has passed without a renewal, an instance gets no more of an agent's messages."""
    ch = f"{prefix}.agents"
    now = [time.time()]
    a = callstore_from_url(redis_url, ttl_s=TTL, prefix=prefix, channel=ch, instance="ia", presence_s=60,
                           clock=lambda: now[0])
    await a.connect()
    try:
        await a.present(["alice"])
        async with Listener(redis_url, [f"{ch}:ia"]) as heard:
            await a.apply("c1", _ring("c1", "alice"), _render)
            await heard.settle()
            now[0] += 61  # past the presence time, not renewed
            await a.apply("c2", _ring("c2", "alice"), _render)
            await heard.settle()
    finally:
        await a.close()
    assert heard.got == {f"{ch}:ia": ["call.ringing"]}


async def test_without_an_instance_every_message_goes_on_the_shared_channel(redis_url: str, prefix: str) -> None:
    """A store given no instance has no route: messages go on the shared channel, present() does nothing."""
    ch = f"{prefix}.agents"
    a = callstore_from_url(redis_url, ttl_s=TTL, prefix=prefix, channel=ch)
    await a.connect()
    try:
        assert a.route is None
        await a.present(["alice"])
        async with Listener(redis_url, [ch]) as heard:
            await a.apply("c1", _ring("c1", "alice"), _render)
            await heard.settle()
        assert await a._client.exists(f"{prefix}:where:alice") == 0  # type: ignore[attr-defined]
    finally:
        await a.close()
    assert heard.got == {ch: ["call.ringing"]}


async def test_a_changes_messages_for_one_instance_go_as_one_bundle_in_order(
        pair: Pair, redis_url: str) -> None:
    """A change with two messages for alice (on b) and one for bob (on a): b gets one bus message holding both
    of alice's, in order; a gets bob's alone."""
    a, b, ch = pair

    def render(out: Outcome) -> list[str]:
        def env(to: list[str], kind: str) -> str:
            return protocol.envelope(to, protocol.Message(kind, "c1", json.dumps({"x": 1})))
        return [env(["alice"], "call.ringing"), env(["bob"], "call.ringing"), env(["alice"], "card.section")]

    await a.present(["bob"])
    await b.present(["alice"])
    async with Listener(redis_url, [f"{ch}:ia", f"{ch}:ib"]) as heard:
        await a.apply("c1", _ring("c1", "alice", "bob"), render)
        await heard.settle()
    assert heard.got == {f"{ch}:ia": ["call.ringing"], f"{ch}:ib": ["call.ringing+card.section"]}
