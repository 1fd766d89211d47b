"""The FreeSWITCH ESL adapter against an event socket speaking the real protocol on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging

import pytest

from screenpop.models import CallEvent
from telephony.cti import Backoff
from telephony.freeswitch import EVENTS, EslAdapter, Packet, parse_event
from tests.telephony.esl_server import EslServer, encode_event
from tests.telephony.scenarios import Feed, LogWatch, Scenario, esl_scenarios, esl_sentinel

SCENARIOS = esl_scenarios()
FAST = {"backoff": Backoff(base=0.05, cap=0.2), "keepalive_s": 5.0}


async def run(sc: Scenario, fmt: str = "plain") -> list[CallEvent]:
    """Play `sc` through a real EslAdapter connected to an EslServer; every CallEvent up to a sentinel call."""
    sentinel_event, sentinel = esl_sentinel()
    async with EslServer() as esl:
        feed = Feed(EslAdapter.from_url(f"{esl.url}?format={fmt}", **FAST))
        try:
            await esl.wait_for(lambda: esl.count("api show channels") == 1)
            if sc.drop:
                await esl.send(*sc.phases[0])
                got = await feed.take(sc.before_drop)
                esl.channels = sc.channels
                await esl.drop()
                await esl.wait_for(lambda: esl.count("api show channels") == 2)
                await esl.send(*sc.phases[1])
            else:
                got = []
                await esl.send(*sc.events)
            await esl.send(sentinel_event)
            got += await feed.until(sentinel)
            assert esl.subscriptions == (2 if sc.drop else 1)
            assert esl.commands[1] == f"event {fmt} {' '.join(EVENTS)}"
        finally:
            await feed.close()
    return got[:-1]


@pytest.mark.parametrize("name", ["direct", "ringall", "abandoned", "noanswer", "transfer"])
async def test_scenario_gives_exactly_the_expected_call_events(name: str) -> None:
    """Each call scenario from the FreeSWITCH event reference (text/event-plain) gives exactly its CallEvents."""
    sc = SCENARIOS[name]
    assert await run(sc) == sc.expected_events()


@pytest.mark.parametrize("name", ["ringall", "transfer"])
async def test_json_events_give_the_same_call_events(name: str) -> None:
    """Subscribed with `event json`, the same calls (as text/event-json) give the same CallEvents."""
    sc = SCENARIOS[name]
    assert await run(sc, "json") == sc.expected_events()


@pytest.mark.parametrize("name", ["drop", "drop_answered", "drop_ended"])
async def test_connection_drop_mid_call_logs_in_again_and_the_call_still_ends(name: str) -> None:
    """The socket breaks while agents ring: the adapter logs in again, catches up (show channels), the call ends."""
    sc = SCENARIOS[name]
    assert await run(sc) == sc.expected_events()


async def test_wrong_password_is_logged_and_retried_with_backoff(caplog: pytest.LogCaptureFixture) -> None:
    """`-ERR invalid` is logged (without the password) and retried, spaced out: no crash, no busy loop."""
    caplog.set_level(logging.WARNING, "screenpop.telephony")
    async with EslServer() as esl:
        feed = Feed(EslAdapter("127.0.0.1", esl.port, "not-the-password", backoff=Backoff(0.1, 0.4)))
        try:
            await esl.wait_for(lambda: esl.auth_attempts >= 2)
            await asyncio.sleep(1.0)  # a bounded window: a busy loop would authenticate hundreds of times
            assert 2 <= esl.auth_attempts <= 15 and esl.subscriptions == 0
            assert not feed.task.done()
        finally:
            await feed.close()
    assert "the password was refused: -ERR invalid" in caplog.text
    assert "not-the-password" not in caplog.text


async def test_address_refused_by_the_acl_is_logged_and_retried() -> None:
    """`text/rude-rejection` (apply-inbound-acl) is logged as such and retried until closed."""
    async with EslServer(acl_deny=True) as esl:
        with LogWatch("screenpop.telephony.freeswitch") as logs:
            feed = Feed(EslAdapter("127.0.0.1", esl.port, "ClueCon", backoff=Backoff(0.05, 0.1)))
            try:
                await logs.until("turned this address away (text/rude-rejection): see apply-inbound-acl", n=2)
                assert esl.auth_attempts == 0
            finally:
                await feed.close()


async def test_unanswered_keepalive_means_a_dead_connection() -> None:
    """An event socket that stops answering `api` commands is dropped and connected to again."""
    async with EslServer(answer_api=False) as esl:
        feed = Feed(EslAdapter.from_url(esl.url, backoff=Backoff(0.05, 0.2), keepalive_s=0.2))
        try:
            await esl.wait_for(lambda: esl.subscriptions >= 2)
            assert esl.count("api status") >= 1
        finally:
            await feed.close()


async def test_close_says_exit_and_ends_the_events() -> None:
    """close() sends `exit` and the events() iteration ends without an error."""
    async with EslServer() as esl:
        feed = Feed(EslAdapter.from_url(esl.url, **FAST))
        await esl.wait_for(lambda: esl.subscriptions == 1)
        await feed.close()
        await esl.wait_for(lambda: esl.count("exit") == 1)


def test_plain_event_values_are_url_decoded() -> None:
    """text/event-plain header values are URL-decoded; keys are lower-cased; a body after the headers is ignored."""
    raw = encode_event({"Event-Name": "CHANNEL_CREATE", "Caller-Caller-ID-Number": "+14155550100",
                        "Channel-Name": "sofia/external/+1 415@203.0.113.9:5060"}, "plain")
    head, body = raw.split(b"\n\n", 1)
    assert b"%2B14155550100" in body
    event = parse_event(Packet({"content-type": "text/event-plain"}, body + b"Content-Length: 3\n\nabc"))
    assert event["caller-caller-id-number"] == "+14155550100"
    assert event["channel-name"] == "sofia/external/+1 415@203.0.113.9:5060"


def test_from_url_reads_password_host_port_and_options() -> None:
    """esl://:password@host:port?format=json&keepalive=N; the port defaults to 8021."""
    a = EslAdapter.from_url("esl://:Clue%40Con@fs.example.com:8022?format=json&keepalive=7")
    assert (a.host, a.port, a._password, a.event_format, a.keepalive_s) == ("fs.example.com", 8022, "Clue@Con",
                                                                            "json", 7)
    assert EslAdapter.from_url("esl://:p@fs").port == 8021
    assert "Clue" not in repr(a)


@pytest.mark.parametrize("url", ["ami://:topsecret@fs:8021", "esl://:topsecret@:8021", "esl://fs:8021",
                                 "esl://:topsecret@fs:8021?format=xml", "esl://:topsecret@fs?keepalive=0"])
def test_bad_url_is_refused_without_quoting_the_password(url: str) -> None:
    """A malformed SCREENPOP_ESL_URL raises ValueError saying what is expected, never with the password."""
    with pytest.raises(ValueError) as err:
        EslAdapter.from_url(url)
    assert "topsecret" not in str(err.value)
