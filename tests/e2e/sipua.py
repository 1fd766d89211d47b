"""A small SIP user agent for end-to-end tests: UDP on 127.0.0.1, asyncio, no media.

Just what a test call through a proxy needs: REGISTER, INVITE with an SDP offer, the callee's
100/180/200 answers, ACK, BYE, CANCEL. Every wait is bounded. Requests are sent to the proxy
(an outbound proxy); in-dialog requests carry the route set that the proxy recorded.

    agent = await SipUA.start("1001", proxy);  customer = await SipUA.start("+14155550100", proxy)
    await agent.register()
    call = customer.invite("1001")                                   (sends the INVITE, returns at once)
    inv = await agent.expect_request("INVITE");   agent.reply(inv, 180)
    await customer.expect_response(call.call_id, 180);   agent.reply(inv, 200, sdp=True)
    ok = await customer.expect_response(call.call_id, 200);   customer.answered(call, ok)   (sends the ACK)
    await customer.bye(call)                                         (the agent answers the BYE with 200)
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length",
           "c": "content-type"}
WAIT_S = 10.0


@dataclass
class SipMessage:
    """One parsed SIP message: the start line, the headers in order (names lowercased), the body."""

    start: str
    headers: list[tuple[str, str]]
    body: str = ""
    source: tuple[str, int] = ("", 0)

    @property
    def is_request(self) -> bool:
        return not self.start.startswith("SIP/2.0")

    @property
    def method(self) -> str:
        """The request method, or the method in CSeq for a response."""
        return self.start.split()[0] if self.is_request else self.get("cseq").split()[1]

    @property
    def status(self) -> int:
        return int(self.start.split()[1]) if not self.is_request else 0

    def get(self, name: str) -> str:
        """The first value of a header, or ''."""
        return next((v for n, v in self.headers if n == name), "")

    def all(self, name: str) -> list[str]:
        """Every value of a header, comma-separated lists split (for Via and Record-Route)."""
        out: list[str] = []
        for n, v in self.headers:
            if n == name:
                out += [p.strip() for p in split_list(v)]
        return out

    @classmethod
    def parse(cls, data: bytes, source: tuple[str, int]) -> SipMessage:
        text = data.decode("utf-8", errors="replace")
        head, _, body = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and headers:  # folded line
                headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
                continue
            name, _, value = line.partition(":")
            name = name.strip().lower()
            headers.append((COMPACT.get(name, name), value.strip()))
        return cls(lines[0], headers, body, source)


def split_list(value: str) -> list[str]:
    """Split a header value on the commas that are outside <...> and quotes."""
    parts, depth, quoted, cur = [], 0, False, ""
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif ch == "<" and not quoted:
            depth += 1
        elif ch == ">" and not quoted:
            depth -= 1
        if ch == "," and depth == 0 and not quoted:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [*parts, cur] if cur.strip() else parts


def tag_of(value: str) -> str:
    """The tag parameter of a From/To value, or ''."""
    for param in value.split(";")[1:]:
        k, _, v = param.strip().partition("=")
        if k.lower() == "tag":
            return v
    return ""


def uri_of(value: str) -> str:
    """The URI inside <...> of a name-addr (or the value itself)."""
    if "<" in value:
        return value.split("<", 1)[1].split(">", 1)[0]
    return value.split(";", 1)[0].strip()


@dataclass
class Call:
    """The caller's side of one INVITE dialog."""

    call_id: str
    target: str  # request URI of the INVITE
    from_hdr: str
    to_hdr: str
    branch: str
    cseq: int = 1
    route: list[str] = field(default_factory=list)  # route set for in-dialog requests
    remote: str = ""  # the callee's Contact URI


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, queue: asyncio.Queue[SipMessage]) -> None:
        self.queue = queue

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data.strip():  # keep-alive CRLFs carry nothing
            self.queue.put_nowait(SipMessage.parse(data, addr))


class SipUA:
    """One user agent on its own UDP port; `user` is its SIP user (e.g. "1001" or "+14155550100")."""

    def __init__(self, user: str, proxy: tuple[str, int]) -> None:
        self.user, self.proxy = user, proxy
        self.queue: asyncio.Queue[SipMessage] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.tag = uuid.uuid4().hex[:10]
        self._ids = itertools.count(1)
        self._seen: set[tuple[str, str, str]] = set()  # requests already handed out (retransmissions)
        self._kept: list[SipMessage] = []  # arrived, not yet asked for

    @classmethod
    async def start(cls, user: str, proxy: tuple[str, int]) -> SipUA:
        ua = cls(user, proxy)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(ua.queue), local_addr=("127.0.0.1", 0))
        ua.transport = transport
        ua.port = transport.get_extra_info("sockname")[1]
        return ua

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- sending -----------------------------------------------------------------------------------
    @property
    def contact(self) -> str:
        return f"<sip:{self.user}@127.0.0.1:{self.port}>"

    def _via(self, branch: str) -> str:
        return f"SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch};rport"

    def _branch(self) -> str:
        return f"z9hG4bK-{uuid.uuid4().hex[:12]}"

    def _send(self, start: str, headers: list[tuple[str, str]], body: str = "",
              to: tuple[str, int] | None = None) -> None:
        assert self.transport is not None, "SipUA.start() first"
        if body:
            headers = [*headers, ("Content-Type", "application/sdp")]
        lines = [start, *(f"{n}: {v}" for n, v in headers), f"Content-Length: {len(body.encode())}", "", ""]
        self.transport.sendto(("\r\n".join(lines) + body).encode(), to or self.proxy)

    def sdp(self) -> str:
        sid = next(self._ids)
        return ("v=0\r\n"
                f"o={self.user} {sid} {sid} IN IP4 127.0.0.1\r\n"
                "s=screenpop test\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                f"m=audio {40000 + self.port % 20000} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")

    def request(self, method: str, uri: str, *, call_id: str, from_hdr: str, to_hdr: str, cseq: int,
                branch: str, route: list[str] | None = None, extra: list[tuple[str, str]] | None = None,
                body: str = "") -> None:
        headers = [("Via", self._via(branch)), ("Max-Forwards", "70"), ("From", from_hdr), ("To", to_hdr),
                   ("Call-ID", call_id), ("CSeq", f"{cseq} {method}")]
        headers += [("Route", r) for r in route or []]
        headers += extra or []
        self._send(f"{method} {uri} SIP/2.0", headers, body)

    def reply(self, req: SipMessage, code: int, reason: str = "", *, sdp: bool = False) -> None:
        """Answer a received request; 1xx (but 100) and 2xx carry our To tag, 2xx our Contact."""
        reason = reason or {100: "Trying", 180: "Ringing", 200: "OK", 486: "Busy Here",
                            487: "Request Terminated"}.get(code, "Whatever")
        to = req.get("to")
        if code > 100 and not tag_of(to):
            to = f"{to};tag={self.tag}"
        headers = [("Via", v) for v in req.all("via")]
        headers += [("From", req.get("from")), ("To", to), ("Call-ID", req.get("call-id")),
                    ("CSeq", req.get("cseq"))]
        if req.method == "INVITE" and 100 < code < 300:
            headers += [("Record-Route", rr) for rr in req.all("record-route")]
            headers.append(("Contact", self.contact))
        self._send(f"SIP/2.0 {code} {reason}", headers, self.sdp() if sdp else "", to=req.source)

    # -- receiving ---------------------------------------------------------------------------------
    async def _take(self, wanted: str, match: Callable[[SipMessage], bool], timeout_s: float) -> SipMessage:
        """The first message (kept earlier or arriving within `timeout_s`) that `match`es; the others
        are kept for later calls, so that nothing is lost when two answers cross."""
        for i, msg in enumerate(self._kept):
            if match(msg):
                return self._kept.pop(i)
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    msg = await self.queue.get()
                    if match(msg):
                        return msg
                    self._kept.append(msg)
        except TimeoutError:
            raise AssertionError(f"{self.user}: no {wanted} within {timeout_s} s") from None

    async def expect_request(self, method: str, timeout_s: float = WAIT_S) -> SipMessage:
        """The next new `method` request (retransmissions of one already taken are dropped)."""
        def match(msg: SipMessage) -> bool:
            if not msg.is_request or msg.method != method:
                return False
            vias = msg.all("via")
            key = (msg.get("call-id"), msg.get("cseq"), vias[0] if vias else "")
            if key in self._seen:
                return False
            self._seen.add(key)
            return True

        return await self._take(f"{method} request", match, timeout_s)

    async def expect_response(self, call_id: str, code: int, method: str = "INVITE",
                              timeout_s: float = WAIT_S) -> SipMessage:
        """The `code` answer to `method` in `call_id`; a different final answer fails."""
        def match(msg: SipMessage) -> bool:
            return (not msg.is_request and msg.get("call-id") == call_id and msg.method == method
                    and (msg.status == code or msg.status >= 200))

        msg = await self._take(f"{code} to {method}", match, timeout_s)
        assert msg.status == code, f"expected {code} to {method}, got {msg.start!r}"
        return msg

    # -- the dialogs a test needs ---------------------------------------------------------------------
    async def register(self, expires: int = 300) -> None:
        """REGISTER our contact at the proxy and wait for 200 (expires=0 removes it again)."""
        host = f"{self.proxy[0]}:{self.proxy[1]}"
        aor = f"<sip:{self.user}@{self.proxy[0]}>"
        call_id = f"reg-{uuid.uuid4().hex}"
        self.request("REGISTER", f"sip:{host}", call_id=call_id, from_hdr=f"{aor};tag={self.tag}", to_hdr=aor,
                     cseq=1, branch=self._branch(), extra=[("Contact", self.contact), ("Expires", str(expires))])
        await self.expect_response(call_id, 200, "REGISTER")

    def invite(self, user: str, call_id: str | None = None) -> Call:
        """Send an INVITE with an SDP offer to sip:user@proxy; returns the call (answers come later)."""
        target = f"sip:{user}@{self.proxy[0]}:{self.proxy[1]}"
        call = Call(call_id=call_id or f"{uuid.uuid4().hex}@127.0.0.1", target=target,
                    from_hdr=f"<sip:{self.user}@127.0.0.1>;tag={self.tag}", to_hdr=f"<{target}>",
                    branch=self._branch())
        self.request("INVITE", target, call_id=call.call_id, from_hdr=call.from_hdr, to_hdr=call.to_hdr,
                     cseq=call.cseq, branch=call.branch, extra=[("Contact", self.contact)], body=self.sdp())
        return call

    def answered(self, call: Call, ok: SipMessage) -> None:
        """Take the dialog state from the 200 OK: To tag, remote target, route set; then ACK."""
        call.to_hdr = ok.get("to")
        call.remote = uri_of(ok.get("contact"))
        call.route = list(reversed(ok.all("record-route")))
        self.request("ACK", call.remote, call_id=call.call_id, from_hdr=call.from_hdr, to_hdr=call.to_hdr,
                     cseq=call.cseq, branch=self._branch(), route=call.route)

    async def bye(self, call: Call) -> None:
        """Hang up an answered call and wait for the 200."""
        call.cseq += 1
        self.request("BYE", call.remote, call_id=call.call_id, from_hdr=call.from_hdr, to_hdr=call.to_hdr,
                     cseq=call.cseq, branch=self._branch(), route=call.route)
        await self.expect_response(call.call_id, 200, "BYE")

    async def cancel(self, call: Call) -> None:
        """Cancel a ringing call: CANCEL (same branch as the INVITE), then the 487 is ACKed."""
        self.request("CANCEL", call.target, call_id=call.call_id, from_hdr=call.from_hdr, to_hdr=call.to_hdr,
                     cseq=call.cseq, branch=call.branch)
        await self.expect_response(call.call_id, 200, "CANCEL")
        final = await self.expect_response(call.call_id, 487)
        self.request("ACK", call.target, call_id=call.call_id, from_hdr=call.from_hdr, to_hdr=final.get("to"),
                     cseq=call.cseq, branch=call.branch)
