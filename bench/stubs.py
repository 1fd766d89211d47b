"""Stub back-office systems for the benchmark: one tiny HTTP/1.1 keep-alive server, latency set at run time.

    GET /identity?phone=<E.164>     {"id": "c<digits>", "name": "Customer <digits>"}
    GET /<section>/<customer id>    a small JSON object (sections: balance, orders, credit)
    GET /_latency?identity=0&balance=50&orders=100&credit=200    set the delays in ms (answers the new ones)
    GET /_stats                     {"requests": n}

Written on asyncio.Protocol (no framework) so that the stubs cost a few tens of microseconds per request and
never become the bottleneck: screenpop and the floor are measured against the same stubs, one after the other.
Responses on one connection keep the order of their requests even when their delays differ.

    python -m bench.stubs --port 8100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from urllib.parse import parse_qsl, unquote, urlsplit

SECTIONS = ("balance", "orders", "credit")
MAX_HEAD = 16 * 1024


class State:
    def __init__(self) -> None:
        self.delay_s: dict[str, float] = dict.fromkeys(("identity", *SECTIONS), 0.0)
        self.requests = 0


STATE = State()


def answer(target: str) -> tuple[int, bytes, float]:
    """(status, JSON body, delay in seconds) for a request target."""
    path, _, query = target.partition("?")
    parts = path.strip("/").split("/")
    name = parts[0]
    if name == "identity":
        phone = unquote(query.partition("phone=")[2].partition("&")[0])
        digits = phone[-7:]
        return 200, b'{"id":"c%s","name":"Customer %s"}' % (digits.encode(), digits.encode()), STATE.delay_s[name]
    if name in SECTIONS and len(parts) == 2:
        cid = parts[1].encode()
        if name == "balance":
            body = b'{"customer_id":"%s","balance":1234.5,"currency":"USD","overdue":false}' % cid
        elif name == "orders":
            body = b'{"customer_id":"%s","orders":[{"id":"o1","total":99.0},{"id":"o2","total":12.5}]}' % cid
        else:
            body = b'{"customer_id":"%s","limit":5000,"terms":"net 30"}' % cid
        return 200, body, STATE.delay_s[name]
    if name == "_latency":
        for key, value in parse_qsl(urlsplit(target).query):
            if key in STATE.delay_s:
                STATE.delay_s[key] = max(0.0, float(value)) / 1000
        return 200, json.dumps({k: v * 1000 for k, v in STATE.delay_s.items()}).encode(), 0.0
    if name == "_stats":
        return 200, json.dumps({"requests": STATE.requests}).encode(), 0.0
    return 404, b'{"error":"not found"}', 0.0


class StubProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive; requests may carry a Content-Length body (read and ignored)."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.last_due = 0.0  # responses leave in request order

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.transport is not None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD:
                    self.transport.close()
                return
            head = self.buf[:end]
            length = 0
            lower = head.lower()
            i = lower.find(b"\r\ncontent-length:")
            if i >= 0:
                length = int(lower[i + 17:].split(b"\r\n", 1)[0].strip() or b"0")
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length:]
            try:
                target = head.split(b"\r\n", 1)[0].split(b" ")[1].decode("latin-1")
                status, body, delay = answer(target)
            except (IndexError, ValueError, KeyError):
                status, body, delay = 400, b'{"error":"bad request"}', 0.0
            STATE.requests += 1
            reason = b"OK" if status == 200 else b"Error"
            response = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
                status, reason, len(body), body)
            now = self.loop.time()
            due = max(now + delay, self.last_due)
            self.last_due = due
            if due <= now:
                self.transport.write(response)
            else:
                self.loop.call_at(due, self._send, response)

    def _send(self, response: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(response)


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(StubProtocol, host, port, backlog=1024)
    print(f"stubs listening on http://{host}:{port}", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    try:
        import uvloop  # already installed with uvicorn[standard]; the servers under test use it too
    except ImportError:
        asyncio.run(serve(args.host, args.port))
    else:
        uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
