"""Asterisk: the manager interface (AMI, Asterisk 12 and later) turned into CallEvents.

screenpop connects to the manager port, logs in (`Action: Login`, `Events: on`), lists the channels that
exist (`CoreShowChannels`, to catch up after a reconnect), then reads events, sending `Action: Ping` every
`ping_s` seconds; a Ping still unanswered when the next is due means a dead connection.
Configured by SCREENPOP_AMI_URL=ami://user:secret@pbx:5038 (optionally `?ping=20`).

A call is every channel sharing one Linkedid (the Uniqueid of the call's first channel): call_id = Linkedid.

    Newchannel of the caller's channel, QueueCallerJoin     offered   caller = CallerIDNum, called = Exten
    AgentCalled / DialBegin to DestChannel                  ringing   for its device: PJSIP/1001-0000000c -> PJSIP/1001
    Newstate 6 (Up), DialEnd ANSWER, AgentConnect,
        BridgeEnter of that leg                             answered
    AgentRingNoAnswer, DialEnd NOANSWER / BUSY / CANCEL /
        CHANUNAVAIL / CONGESTION, Hangup of a ringing leg   withdrawn for that agent
    Hangup of the caller's channel                          ended

`Local/` channels are dialplan plumbing, never agents: a queue member `Local/1001@agents` rings the agent
through the DialBegin that its second half sends to `PJSIP/1001`. A blind transfer rings the new agent the
same way (the call keeps its Linkedid). Repeated events change nothing.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

from screenpop.models import CallEvent
from telephony.callbook import CallBook, LiveLeg
from telephony.cti import (
    Backoff,
    Connection,
    ConnectionLost,
    CtiConnector,
    Keepalive,
    LoginFailed,
    ProtocolError,
    parse_url,
    seconds_option,
)

BANNER = "Asterisk Call Manager/"
DEFAULT_PORT = 5038
URL_EXAMPLE = "ami://user:secret@host:5038"
UP = "6"  # ChannelState of an answered channel
STOPPED = frozenset({"NOANSWER", "BUSY", "CANCEL", "CHANUNAVAIL", "CONGESTION"})  # DialEnd: the leg stopped ringing

Message = dict[str, str]  # one AMI block; keys lower-cased


def parse_block(block: bytes) -> Message:
    """`Key: Value` lines into a dict with lower-case keys (the first of repeated keys wins)."""
    out: Message = {}
    for line in block.decode("utf-8", "replace").split("\r\n"):
        key, sep, value = line.partition(":")
        if sep and key.strip():
            out.setdefault(key.strip().lower(), value.strip())
    return out


def action(name: str, **fields: str) -> bytes:
    """One AMI action block."""
    lines = [f"Action: {name}", *(f"{k}: {v}" for k, v in fields.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def interface_of(channel: str) -> str | None:
    """The device a channel rings: `PJSIP/1001-0000000c` -> `PJSIP/1001`; None for Local/ and malformed names."""
    tech, sep, rest = (channel or "").partition("/")
    if not sep or not tech or not rest or tech.lower() == "local":
        return None
    return f"{tech}/{rest.rsplit('-', 1)[0]}"


def device_of(interface: str) -> str | None:
    """A queue member's Interface as an agent address (`PJSIP/1001`); None for Local/ members."""
    tech, sep, rest = (interface or "").partition("/")
    return interface if sep and tech and rest and tech.lower() != "local" else None


def _number(value: str | None) -> str:
    return "" if not value or value == "<unknown>" else value


class AmiAdapter(CtiConnector):
    """A manager-interface client that keeps its calls across reconnects."""

    name = "asterisk"
    goodbye = action("Logoff")

    def __init__(self, host: str, port: int, username: str, secret: str, *, ping_s: float = 20.0,
                 login_timeout: float = 10.0, backoff: Backoff | None = None, connect_timeout: float = 10.0,
                 max_calls: int = 5000) -> None:
        super().__init__(host, port, backoff=backoff, connect_timeout=connect_timeout)
        self.username = username
        self._secret = secret
        self.ping_s, self.login_timeout = ping_s, login_timeout
        self.book = CallBook(max_calls=max_calls, logger=self.log)
        self._ids = itertools.count(1)

    @classmethod
    def from_url(cls, url: str, **kwargs: object) -> AmiAdapter:
        """From ami://user:secret@host:5038[?ping=20]; ValueError (never quoting the secret) when malformed."""
        t = parse_url(url, "ami", DEFAULT_PORT, URL_EXAMPLE, need_user=True)
        options: dict[str, object] = {"ping_s": seconds_option(t.options, "ping", 20.0), **kwargs}
        return cls(t.host, t.port, t.username, t.secret, **options)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"AmiAdapter({self.username!r}@{self.host}:{self.port})"

    async def _greet(self, reader: asyncio.StreamReader) -> None:
        line = (await reader.readline()).decode("utf-8", "replace").strip()
        if not line.startswith(BANNER):
            raise ProtocolError(f"expected the banner {BANNER!r}…, got {line[:60]!r}")
        self.log.debug("asterisk: %s", line)

    async def _frame(self, reader: asyncio.StreamReader) -> Message:
        return parse_block(await reader.readuntil(b"\r\n\r\n"))

    async def _request(self, conn: Connection, name: str, **fields: str) -> str:
        action_id = f"screenpop-{next(self._ids)}"
        await conn.send(action(name, ActionID=action_id, **fields))
        return action_id

    async def _session(self, conn: Connection) -> AsyncIterator[CallEvent]:
        login = await self._request(conn, "Login", Username=self.username, Secret=self._secret, Events="on")
        while True:
            m = await conn.receive(self.login_timeout)
            if m is None:
                raise ConnectionLost(f"no answer to Login within {self.login_timeout:g} s")
            if m.get("actionid") == login and "response" in m:
                break
        if m["response"].lower() != "success":
            raise LoginFailed(f"the login as {self.username!r} was refused: {m.get('message') or m['response']}")
        self._logged_in()
        mark = self.book.touch()
        sync: str | None = await self._request(conn, "CoreShowChannels")
        listed: list[LiveLeg] = []
        keepalive, ping = Keepalive(self.ping_s), ""
        while True:
            m = await conn.receive(keepalive.wait())
            if m is not None:
                self.book.touch()
                action_id, event = m.get("actionid"), m.get("event", "")
                if "response" in m:
                    if action_id == ping:
                        keepalive.answered()
                    elif action_id == sync and m["response"].lower() != "success":
                        self.log.warning("asterisk: CoreShowChannels refused (%s); calls missed while "
                                         "disconnected are not caught up (manager.conf: write = reporting)",
                                         m.get("message", ""))
                        sync = None
                elif action_id == sync and event == "CoreShowChannel":
                    listed += self._live(m)
                elif action_id == sync and event == "CoreShowChannelsComplete":
                    sync = None
                    for e in self.book.reconcile(mark, listed):
                        yield e
                else:
                    for e in self.events_for(m):
                        yield e
            if keepalive.due():
                ping = await self._request(conn, "Ping")

    def _live(self, m: Message) -> list[LiveLeg]:
        uid, channel = m.get("uniqueid", ""), m.get("channel", "")
        lid = m.get("linkedid") or uid
        if not uid or channel.lower().startswith("local/"):
            return []
        caller = uid == lid
        return [LiveLeg(self.book.call_of(uid) or lid, uid, caller, None if caller else interface_of(channel),
                        m.get("channelstate") == UP, _number(m.get("calleridnum")) if caller else "",
                        _called(m) if caller else None)]

    def events_for(self, m: Message) -> list[CallEvent]:
        """The CallEvents one AMI event means, given what the book knows (and updating it)."""
        book, name = self.book, m.get("event", "")
        uid, lid = m.get("uniqueid", ""), m.get("linkedid", "")
        channel = m.get("channel", "")
        if name == "Newchannel":
            if uid and uid == lid and interface_of(channel):
                return book.offered(lid, _number(m.get("calleridnum")), _called(m), caller_leg=uid)
        elif name == "QueueCallerJoin":
            return book.offered(book.call_of(uid) or lid or uid, _number(m.get("calleridnum")), None,
                                caller_leg=uid if uid == lid else None)
        elif name in ("DialBegin", "AgentCalled"):
            dest = m.get("destchannel", "")
            agent = device_of(m.get("interface", "")) if name == "AgentCalled" else None
            call_id = book.call_of(uid) or lid or m.get("destlinkedid", "")
            is_caller = bool(uid) and uid == lid and interface_of(channel) is not None
            return book.ringing(call_id, m.get("destuniqueid", ""), agent or interface_of(dest),
                                caller=_number(m.get("calleridnum")) if is_caller else "",
                                caller_leg=uid if is_caller else None)
        elif name == "DialEnd":
            status, dest = m.get("dialstatus", "").upper(), m.get("destuniqueid", "")
            if status == "ANSWER":
                return book.answered(dest)
            if status in STOPPED:
                return book.stopped(dest)
        elif name == "Newstate":
            if m.get("channelstate") == UP:
                return book.answered(uid)
        elif name == "BridgeEnter":
            return book.answered(uid)
        elif name == "AgentConnect":
            return book.answered(m.get("destuniqueid", ""), call_id=book.call_of(uid) or lid,
                                 agent=device_of(m.get("interface", "")) or interface_of(m.get("destchannel", "")))
        elif name == "AgentRingNoAnswer":
            return book.stopped(m.get("destuniqueid", ""))
        elif name == "Hangup":
            if book.is_caller_leg(uid) or (uid and uid == lid and lid in book.calls):
                return book.ended(book.call_of(uid) or lid)
            return book.stopped(uid)
        return []


def _called(m: Message) -> str | None:
    exten = m.get("exten", "")
    return exten if exten and exten != "s" else None
