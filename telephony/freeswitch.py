"""FreeSWITCH: the inbound event socket (mod_event_socket) turned into CallEvents.

screenpop connects to the event socket, answers `auth/request` with `auth <password>`, subscribes to the
channel events below (`event plain …`, or `event json …` with ?format=json), lists the channels that exist
(`api show channels as json`, to catch up after a reconnect), then reads events, sending `api status` every
`keepalive_s` seconds; a probe still unanswered when the next is due means a dead connection.
Configured by SCREENPOP_ESL_URL=esl://:password@pbx:8021 (optionally `?format=json&keepalive=20`).

A call is the caller's inbound channel and the outbound legs it dials: call_id = the inbound Unique-ID. A leg
names its call by `variable_originating_leg_uuid` (bridge, originate), `variable_cc_member_session_uuid`
(mod_callcenter), `Other-Leg-Unique-ID` when `Other-Type: originator`, or `Channel-Call-UUID`.

    CHANNEL_CREATE of an inbound channel                         offered  caller = Caller-Caller-ID-Number,
                                                                          called = Caller-Destination-Number
    CHANNEL_PROGRESS, CHANNEL_CALLSTATE RINGING / EARLY of a leg  ringing  for variable_dialed_user, else the
                                                                          leg's Caller-Destination-Number
    CHANNEL_ANSWER, CHANNEL_CALLSTATE ACTIVE, CHANNEL_BRIDGE      answered
    CHANNEL_HANGUP_COMPLETE of a ringing leg (LOSE_RACE, NO_ANSWER, ORIGINATOR_CANCEL, …)  withdrawn
    CHANNEL_HANGUP_COMPLETE of the inbound channel                ended

Header values of text/event-plain are URL-decoded; text/event-json carries them as JSON strings.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import unquote

import pydantic_core

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

DEFAULT_PORT = 8021
URL_EXAMPLE = "esl://:password@host:8021"
EVENTS = ("CHANNEL_CREATE", "CHANNEL_CALLSTATE", "CHANNEL_PROGRESS", "CHANNEL_ANSWER", "CHANNEL_BRIDGE",
          "CHANNEL_HANGUP_COMPLETE")
MAX_BODY = 4 << 20
EVENT_TYPES = ("text/event-plain", "text/event-json")


@dataclass
class Packet:
    """One ESL packet: its headers (lower-case keys) and its body."""

    headers: dict[str, str]
    body: bytes = b""

    @property
    def type(self) -> str:
        return self.headers.get("content-type", "")


def _header_lines(text: str, decode: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.split("\n"):
        key, sep, value = line.partition(":")
        if sep and key.strip():
            value = value.strip()
            out.setdefault(key.strip().lower(), unquote(value) if decode else value)
    return out


def parse_event(packet: Packet) -> dict[str, str]:
    """The headers of a text/event-plain (URL-decoded) or text/event-json packet, keys lower-cased."""
    text = packet.body.decode("utf-8", "replace")
    if packet.type == "text/event-json":
        try:
            data = pydantic_core.from_json(text)
        except ValueError:
            raise ProtocolError("a text/event-json body is not JSON") from None
        if not isinstance(data, dict):
            raise ProtocolError(f"expected a JSON object in text/event-json, got {type(data).__name__}")
        return {str(k).lower(): str(v) for k, v in data.items() if isinstance(v, (str, int, float))}
    return _header_lines(text.split("\n\n", 1)[0], decode=True)


def _number(value: str | None) -> str:
    return "" if not value or value.lower() in ("unknown", "anonymous") else value


class EslAdapter(CtiConnector):
    """An inbound event-socket client that keeps its calls across reconnects."""

    name = "freeswitch"
    goodbye = b"exit\n\n"

    def __init__(self, host: str, port: int, password: str, *, event_format: str = "plain",
                 keepalive_s: float = 20.0, login_timeout: float = 10.0, backoff: Backoff | None = None,
                 connect_timeout: float = 10.0, max_calls: int = 5000) -> None:
        if event_format not in ("plain", "json"):
            raise ValueError(f"the event format must be plain or json, got {event_format[:20]!r}")
        super().__init__(host, port, backoff=backoff, connect_timeout=connect_timeout)
        self._password = password
        self.event_format, self.keepalive_s, self.login_timeout = event_format, keepalive_s, login_timeout
        self.book = CallBook(max_calls=max_calls, logger=self.log)

    @classmethod
    def from_url(cls, url: str, **kwargs: object) -> EslAdapter:
        """From esl://:password@host:8021[?format=json&keepalive=20]; ValueError (never quoting the password)."""
        t = parse_url(url, "esl", DEFAULT_PORT, URL_EXAMPLE, need_user=False)
        options: dict[str, object] = {"event_format": t.options.get("format", "plain"),
                                      "keepalive_s": seconds_option(t.options, "keepalive", 20.0), **kwargs}
        return cls(t.host, t.port, t.secret, **options)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"EslAdapter({self.host}:{self.port}, {self.event_format})"

    async def _frame(self, reader: asyncio.StreamReader) -> Packet:
        head = _header_lines((await reader.readuntil(b"\n\n")).decode("utf-8", "replace"), decode=False)
        length = head.get("content-length")
        if not length:
            return Packet(head)
        if not length.isdigit() or int(length) > MAX_BODY:
            raise ProtocolError(f"expected a Content-Length up to {MAX_BODY} bytes, got {length[:20]!r}")
        return Packet(head, await reader.readexactly(int(length)))

    async def _reply(self, conn: Connection, what: str) -> str:
        """The Reply-Text of the next command/reply."""
        while True:
            packet = await conn.receive(self.login_timeout)
            if packet is None:
                raise ConnectionLost(f"no reply to {what} within {self.login_timeout:g} s")
            if packet.type == "text/disconnect-notice":
                raise ConnectionLost(f"FreeSWITCH closed the socket instead of replying to {what}")
            if packet.type == "command/reply":
                return str(packet.headers.get("reply-text", ""))

    async def _session(self, conn: Connection) -> AsyncIterator[CallEvent]:
        first = await conn.receive(self.login_timeout)
        if first is not None and first.type == "text/rude-rejection":
            raise LoginFailed("FreeSWITCH turned this address away (text/rude-rejection): see apply-inbound-acl")
        if first is None or first.type != "auth/request":
            got = "nothing" if first is None else repr(first.type[:40])
            raise ProtocolError(f"expected Content-Type: auth/request, got {got}")
        await conn.send(f"auth {self._password}\n\n".encode())
        reply = await self._reply(conn, "auth")
        if not reply.startswith("+OK"):
            raise LoginFailed(f"the password was refused: {reply[:80] or 'no Reply-Text'}")
        self._logged_in()
        await conn.send(f"event {self.event_format} {' '.join(EVENTS)}\n\n".encode())
        reply = await self._reply(conn, "event")
        if not reply.startswith("+OK"):
            raise ProtocolError(f"the event subscription was refused: {reply[:80]}")
        mark = self.book.touch()
        await conn.send(b"api show channels as json\n\n")
        pending: deque[str] = deque(["sync"])  # what each api/response to come answers, in order
        keepalive = Keepalive(self.keepalive_s)
        while True:
            packet = await conn.receive(keepalive.wait())
            if packet is not None:
                self.book.touch()
                if packet.type in EVENT_TYPES:
                    try:
                        event = parse_event(packet)
                    except ProtocolError as err:  # framed by its Content-Length: the next packet is fine
                        self.log.warning("freeswitch: skipped an event: %s", err)
                        continue
                    for e in self.events_for(event):
                        yield e
                elif packet.type == "api/response":
                    kind = pending.popleft() if pending else ""
                    if kind == "ping":
                        keepalive.answered()
                    elif kind == "sync":
                        for e in self.book.reconcile(mark, self._live(packet.body)):
                            yield e
                elif packet.type == "text/disconnect-notice":
                    raise ConnectionLost("FreeSWITCH closed the event socket (text/disconnect-notice)")
            if keepalive.due():
                await conn.send(b"api status\n\n")
                pending.append("ping")

    def _live(self, body: bytes) -> list[LiveLeg]:
        try:
            rows = pydantic_core.from_json(body).get("rows") or []
        except (ValueError, AttributeError):
            self.log.warning("freeswitch: `show channels as json` did not answer JSON (%r); calls missed while "
                             "disconnected are not caught up", body[:60])
            return []
        out: list[LiveLeg] = []
        for r in rows:
            uuid, origin = str(r.get("uuid") or ""), str(r.get("call_uuid") or "")
            up = str(r.get("callstate", "")).upper() in ("ACTIVE", "HELD", "UNHELD")
            if not uuid:
                continue
            if r.get("direction") == "inbound":
                out.append(LiveLeg(uuid, uuid, True, None, up, _number(r.get("cid_num")), r.get("dest") or None))
            elif origin and origin != uuid:
                out.append(LiveLeg(self.book.call_of(origin) or origin, uuid, False, r.get("dest") or None, up,
                                   _number(r.get("cid_num"))))
        return out

    def _call_of(self, e: dict[str, str], uid: str) -> str | None:
        """The call (its inbound Unique-ID) an outbound leg belongs to."""
        known = self.book.call_of(uid)
        if known:
            return known
        origins = [e.get("variable_originating_leg_uuid"), e.get("variable_cc_member_session_uuid"),
                   e.get("other-leg-unique-id") if e.get("other-type") == "originator" else None,
                   e.get("channel-call-uuid")]
        origin = next((o for o in origins if o and o != uid), None)
        return (self.book.call_of(origin) or origin) if origin else None

    def events_for(self, e: dict[str, str]) -> list[CallEvent]:
        """The CallEvents one channel event means, given what the book knows (and updating it)."""
        book, name, uid = self.book, e.get("event-name", ""), e.get("unique-id", "")
        if not uid:
            return []
        if name == "CHANNEL_BRIDGE":
            return book.answered(uid) + book.answered(e.get("other-leg-unique-id") or e.get("bridge-b-unique-id", ""))
        inbound = (e.get("call-direction") or e.get("caller-direction") or "").lower() == "inbound"
        if inbound and not book.call_of(uid) or book.is_caller_leg(uid):
            if name == "CHANNEL_CREATE":
                return book.offered(uid, _number(e.get("caller-caller-id-number")),
                                    e.get("caller-destination-number") or None, caller_leg=uid)
            if name == "CHANNEL_HANGUP_COMPLETE":
                return book.ended(uid)
            return []
        if name == "CHANNEL_HANGUP_COMPLETE":
            return book.stopped(uid)
        call_id = self._call_of(e, uid)
        if not call_id:
            return []
        agent = e.get("variable_dialed_user") or e.get("caller-destination-number") or None
        state = e.get("channel-call-state", "").upper()
        if name == "CHANNEL_PROGRESS" or (name == "CHANNEL_CALLSTATE" and state in ("RINGING", "EARLY")):
            return book.ringing(call_id, uid, agent, caller=_number(e.get("caller-caller-id-number")))
        if name == "CHANNEL_ANSWER" or (name == "CHANNEL_CALLSTATE" and state == "ACTIVE"):
            return book.answered(uid, call_id=call_id, agent=agent)
        return []
