"""The Asterisk AMI adapter against a manager interface speaking the real protocol on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging

import pytest

from screenpop.config import ConfigError
from screenpop.models import CallEvent, EventKind
from screenpop.service import build_cti
from screenpop.settings import Settings
from telephony.asterisk import AmiAdapter, interface_of, parse_block
from telephony.callbook import CallBook
from telephony.cti import Backoff
from telephony.freeswitch import EslAdapter
from tests.telephony.ami_server import AmiServer
from tests.telephony.scenarios import Feed, LogWatch, Scenario, ami_scenarios, ami_sentinel

SCENARIOS = ami_scenarios()
FAST = {"backoff": Backoff(base=0.05, cap=0.2), "ping_s": 5.0}


async def run(sc: Scenario, *, twice: bool = False) -> list[CallEvent]:
    """Play `sc` through a real AmiAdapter connected to an AmiServer; every CallEvent up to a sentinel call."""
    sentinel_event, sentinel = ami_sentinel()
    async with AmiServer() as ami:
        feed = Feed(AmiAdapter.from_url(ami.url, **FAST))
        try:
            await ami.wait_for(lambda: ami.count("CoreShowChannels") == 1)
            events = [e for e in sc.events for _ in range(2 if twice else 1)]
            if sc.drop:
                await ami.send(*sc.phases[0])
                got = await feed.take(sc.before_drop)
                ami.channels = sc.channels
                await ami.drop()
                await ami.wait_for(lambda: ami.count("CoreShowChannels") == 2)
                await ami.send(*sc.phases[1])
            else:
                got = []
                await ami.send(*events)
            await ami.send(sentinel_event)
            got += await feed.until(sentinel)
            assert ami.logins == (2 if sc.drop else 1)
        finally:
            await feed.close()
    return got[:-1]


@pytest.mark.parametrize("name", ["direct", "ringall", "abandoned", "noanswer", "transfer", "localmember"])
async def test_scenario_gives_exactly_the_expected_call_events(name: str) -> None:
    """Each call scenario from the AMI reference turns into exactly its CallEvents, in order."""
    sc = SCENARIOS[name]
    assert await run(sc) == sc.expected_events()


async def test_every_event_repeated_still_pops_once() -> None:
    """AMI repeats events: the ring-all queue with every event sent twice gives the same CallEvents."""
    sc = SCENARIOS["ringall"]
    assert await run(sc, twice=True) == sc.expected_events()


@pytest.mark.parametrize("name", ["drop", "drop_answered", "drop_ended"])
async def test_connection_drop_mid_call_logs_in_again_and_the_call_still_ends(name: str) -> None:
    """The link breaks while agents ring: the adapter logs in again, catches up (CoreShowChannels), the call ends."""
    sc = SCENARIOS[name]
    assert await run(sc) == sc.expected_events()


async def test_missing_pong_means_a_dead_connection() -> None:
    """A manager that stops answering Ping is dropped and connected to again."""
    async with AmiServer(pong=False) as ami:
        feed = Feed(AmiAdapter.from_url(ami.url, backoff=Backoff(0.05, 0.2), ping_s=0.2))
        try:
            await ami.wait_for(lambda: ami.logins >= 2)
            assert ami.count("Ping") >= 1 and ami.connections >= 2
        finally:
            await feed.close()


async def test_answered_pings_keep_one_connection() -> None:
    """Pings that get their Pong keep the same connection: no reconnect, no second login."""
    async with AmiServer() as ami:
        feed = Feed(AmiAdapter.from_url(ami.url, backoff=Backoff(0.05, 0.2), ping_s=0.05))
        try:
            await ami.wait_for(lambda: ami.count("Ping") >= 4)
            assert ami.connections == 1 and ami.logins == 1
        finally:
            await feed.close()
        assert ami.count("Logoff") == 1


async def test_wrong_secret_is_logged_and_retried_with_backoff(caplog: pytest.LogCaptureFixture) -> None:
    """A refused login is logged (without the secret) and retried, spaced out: no crash, no busy loop."""
    caplog.set_level(logging.WARNING, "screenpop.telephony")
    async with AmiServer() as ami:
        adapter = AmiAdapter("127.0.0.1", ami.port, "screenpop", "not-the-secret", backoff=Backoff(0.1, 0.4))
        feed = Feed(adapter)
        try:
            await ami.wait_for(lambda: ami.login_attempts >= 2)
            await asyncio.sleep(1.0)  # a bounded window: a busy loop would log in hundreds of times
            assert 2 <= ami.login_attempts <= 15 and ami.logins == 0
            assert not feed.task.done()
        finally:
            await feed.close()
    assert "the login as 'screenpop' was refused: Authentication failed" in caplog.text
    assert "not-the-secret" not in caplog.text


async def test_nothing_listening_is_retried_without_crashing() -> None:
    """No manager on the port: the adapter logs `cannot connect` and keeps trying until closed."""
    async with AmiServer() as ami:
        port = ami.port
    with LogWatch("screenpop.telephony.asterisk") as logs:
        feed = Feed(AmiAdapter("127.0.0.1", port, "u", "s", backoff=Backoff(0.05, 0.1)))
        try:
            await logs.until("cannot connect", n=2)
            assert not feed.task.done()
        finally:
            await feed.close()


async def test_not_a_manager_interface_is_a_protocol_error() -> None:
    """A server that does not greet with the AMI banner is reported as such and retried."""

    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(http, "127.0.0.1", 0)
    with LogWatch("screenpop.telephony.asterisk") as logs:
        feed = Feed(AmiAdapter("127.0.0.1", server.sockets[0].getsockname()[1], "u", "s",
                               backoff=Backoff(0.05, 0.1)))
        try:
            await logs.until("expected the banner 'Asterisk Call Manager/'…, got 'HTTP/1.1 400 Bad Request'")
        finally:
            await feed.close()
            server.close()
            await server.wait_closed()


def test_from_url_reads_user_secret_host_port_and_ping() -> None:
    """ami://user:secret@host:port?ping=N, with a URL-encoded secret; the port defaults to 5038."""
    a = AmiAdapter.from_url("ami://screenpop:s3cr%2Ft@pbx.example.com:5039?ping=5")
    assert (a.host, a.port, a.username, a._secret, a.ping_s) == ("pbx.example.com", 5039, "screenpop", "s3cr/t", 5)
    assert AmiAdapter.from_url("ami://u:p@pbx").port == 5038
    assert "s3cr" not in repr(a)


@pytest.mark.parametrize("url", ["http://u:topsecret@pbx:5038", "ami://u:topsecret@:5038", "ami://:topsecret@pbx",
                                 "ami://u@pbx:5038", "ami://u:topsecret@pbx:99999", "ami://u:topsecret@pbx?ping=x",
                                 "topsecret"])
def test_bad_url_is_refused_without_quoting_the_secret(url: str) -> None:
    """A malformed SCREENPOP_AMI_URL raises ValueError saying what is expected, never with the secret."""
    with pytest.raises(ValueError, match="expected|ping") as err:
        AmiAdapter.from_url(url)
    assert "topsecret" not in str(err.value)


def test_service_builds_both_adapters_from_settings() -> None:
    """SCREENPOP_AMI_URL and SCREENPOP_ESL_URL give one adapter each; a bad one is a ConfigError without secret."""
    adapters = build_cti(Settings(ami_url="ami://u:p@pbx:5038", esl_url="esl://:ClueCon@pbx:8021"))
    assert [type(a) for a in adapters] == [AmiAdapter, EslAdapter]
    with pytest.raises(ConfigError) as err:
        build_cti(Settings(ami_url="amy://u:topsecret@pbx"))
    assert "topsecret" not in str(err.value)


@pytest.mark.parametrize(("channel", "device"), [
    ("PJSIP/1001-0000000c", "PJSIP/1001"), ("SIP/1001-00000012", "SIP/1001"), ("IAX2/1001-1234", "IAX2/1001"),
    ("PJSIP/agent-alice-00000001", "PJSIP/agent-alice"), ("Local/1001@from-queue-00000003;1", None),
    ("", None), ("garbage", None)])
def test_interface_of_a_channel(channel: str, device: str | None) -> None:
    """A channel name gives its device (the agent address); Local/ channels are no agent."""
    assert interface_of(channel) == device


def test_backoff_doubles_with_jitter_up_to_the_cap_and_resets() -> None:
    """Each pause lies between half and all of its doubling step, never above the cap; a reset starts over."""
    b = Backoff(base=1, cap=8)
    steps = [1, 2, 4, 8, 8]
    assert all(s / 2 <= b.next() <= s for s in steps)
    for _ in range(5000):
        assert b.next() <= 8
    b.reset()
    assert b.next() <= 1


def test_parse_block_lower_cases_keys_and_keeps_colons_in_values() -> None:
    """`Key: Value` CRLF lines; values may hold colons; the first of repeated keys wins."""
    m = parse_block(b"Event: Hangup\r\nChannel: PJSIP/1001-00000001\r\nCause-txt: Normal: x\r\nCause-txt: y\r\n\r\n")
    assert m == {"event": "Hangup", "channel": "PJSIP/1001-00000001", "cause-txt": "Normal: x"}


def test_call_book_is_bounded_and_ignores_events_after_the_end() -> None:
    """The book keeps at most max_calls calls and max_legs legs; a late event for an ended call is ignored."""
    book = CallBook(max_calls=2, max_legs=2)
    for n in range(3):
        book.offered(f"c{n}", "+14155550100")
    assert list(book.calls) == ["c1", "c2"]
    for leg in ("l1", "l2", "l3"):
        book.ringing("c2", leg, f"PJSIP/{leg}")
    assert list(book.calls["c2"].legs) == ["l2", "l3"]
    assert [e.event for e in book.ended("c2")] == [EventKind.ENDED]
    assert book.ringing("c2", "l4", "PJSIP/1004") == [] and book.stopped("l3") == [] and book.ended("c2") == []
