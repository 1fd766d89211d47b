"""A FreeSWITCH inbound event socket for tests, speaking the real wire protocol on 127.0.0.1.

It greets with `Content-Type: auth/request` (or, with `acl_deny`, turns the client away with
`text/rude-rejection`), answers `auth` with a `command/reply` (`+OK accepted`, or
`-ERR invalid` followed by a disconnect notice), `event plain|json …`, `api show channels as json` (listing
`channels`), `api status` and `exit`, and sends the events a test gives it to every subscribed client, in the
format that client chose: text/event-plain (URL-encoded header values) or text/event-json, each with its
Content-Length.

    async with EslServer() as esl:
        adapter = EslAdapter.from_url(esl.url)
        ...
        await esl.wait_for(lambda: esl.subscriptions == 1)
        await esl.send(*events)       # dicts of header name -> value, in order
        await esl.drop()
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from urllib.parse import quote

DISCONNECT = b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"


def reply(text: str) -> bytes:
    return f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode()


def with_body(content_type: str, body: bytes) -> bytes:
    return f"Content-Length: {len(body)}\nContent-Type: {content_type}\n\n".encode() + body


def encode_event(event: dict[str, str], fmt: str) -> bytes:
    """One event packet as FreeSWITCH sends it in `fmt` (plain or json)."""
    if fmt == "json":
        return with_body("text/event-json", json.dumps(event).encode())
    body = "".join(f"{k}: {quote(v, safe='')}\n" for k, v in event.items()) + "\n"
    return with_body("text/event-plain", body.encode())


class EslServer:
    """An event socket on a free port of 127.0.0.1; counts connections, auth attempts and subscriptions."""

    def __init__(self, password: str = "ClueCon", *, answer_api: bool = True, acl_deny: bool = False) -> None:
        self.password, self.answer_api, self.acl_deny = password, answer_api, acl_deny
        self.channels: list[dict[str, str]] = []  # rows of `show channels as json`
        self.commands: list[str] = []
        self.connections = self.auth_attempts = self.subscriptions = 0
        self.port = 0
        self._clients: dict[asyncio.StreamWriter, str] = {}  # subscribed client -> its format
        self._writers: set[asyncio.StreamWriter] = set()
        self._changed = asyncio.Event()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"esl://:{self.password}@127.0.0.1:{self.port}"

    async def start(self) -> EslServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self.drop()
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> EslServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_for(self, predicate: Callable[[], bool], within: float = 10) -> None:
        """Return once `predicate()` holds (checked after every change), failing after `within` seconds."""
        async with asyncio.timeout(within):
            while True:
                self._changed.clear()
                if predicate():
                    return
                await self._changed.wait()

    def count(self, prefix: str) -> int:
        """How many commands starting with `prefix` arrived."""
        return sum(1 for c in self.commands if c.startswith(prefix))

    async def send(self, *events: dict[str, str]) -> None:
        """Send each event to every subscribed client, in order, in the client's format."""
        for writer, fmt in list(self._clients.items()):
            for event in events:
                writer.write(encode_event(event, fmt))
            try:
                await writer.drain()
            except ConnectionError:
                pass

    async def drop(self) -> None:
        """Break every connection."""
        for writer in list(self._writers):
            writer.close()
        await self.wait_for(lambda: not self._writers)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        self._changed.set()
        if self.acl_deny:  # apply-inbound-acl does not allow this address
            writer.write(with_body("text/rude-rejection", b"Access Denied, go away.\n"))
            writer.close()
        else:
            writer.write(b"Content-Type: auth/request\n\n")
        authed = False
        try:
            while not writer.is_closing():
                command = (await reader.readuntil(b"\n\n")).decode().strip()
                self.commands.append(command)
                authed = self._answer(command, writer, authed)
                self._changed.set()
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._clients.pop(writer, None)
            self._writers.discard(writer)
            writer.close()
            self._changed.set()

    def _answer(self, command: str, writer: asyncio.StreamWriter, authed: bool) -> bool:
        word, _, rest = command.partition(" ")
        if word == "auth":
            self.auth_attempts += 1
            if rest == self.password:
                writer.write(reply("+OK accepted"))
                return True
            writer.write(reply("-ERR invalid"))
            writer.write(with_body("text/disconnect-notice", DISCONNECT))
            writer.close()
        elif not authed:
            writer.write(reply("-ERR command not found"))
        elif word == "event":
            fmt = rest.partition(" ")[0]
            self.subscriptions += 1
            self._clients[writer] = fmt
            writer.write(reply(f"+OK event listener enabled {fmt}"))
        elif command == "api show channels as json" and self.answer_api:
            listing = {"row_count": len(self.channels), "rows": self.channels} if self.channels else {"row_count": 0}
            writer.write(with_body("api/response", json.dumps(listing).encode()))
        elif command == "api status" and self.answer_api:
            writer.write(with_body("api/response", b"UP 0 years, 0 days, 0 hours, 1 minute, 2 seconds\nFreeSWITCH "
                                                   b"(Version 1.10.11 -release 64bit) is ready\n"))
        elif word == "exit":
            writer.write(reply("+OK bye"))
            writer.write(with_body("text/disconnect-notice", DISCONNECT))
            writer.close()
        elif word != "api":
            writer.write(reply("-ERR command not found"))
        return authed
