"""An Asterisk manager interface for tests, speaking the real wire protocol on 127.0.0.1.

It greets with the banner `Asterisk Call Manager/5.0.2`, answers Login (closing the connection after a wrong
secret, as Asterisk does), Ping, CoreShowChannels (listing `channels`) and Logoff, and sends the events a test
gives it to every logged-in client: `Key: Value` lines ending in CRLF, a blank line after each block.

    async with AmiServer() as ami:
        adapter = AmiAdapter.from_url(ami.url)
        ...
        await ami.wait_for(lambda: ami.logins == 1)
        await ami.send(*events)       # dicts of header name -> value, in order
        await ami.drop()              # the connection breaks; the client may come back
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

BANNER = b"Asterisk Call Manager/5.0.2\r\n"


def block(fields: dict[str, str]) -> bytes:
    """One AMI block: `Key: Value` CRLF lines and a blank line."""
    return "".join(f"{k}: {v}\r\n" for k, v in fields.items()).encode() + b"\r\n"


def parse(raw: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in raw.decode().split("\r\n"):
        key, sep, value = line.partition(": ")
        if sep:
            out[key] = value
    return out


class AmiServer:
    """A manager interface on a free port of 127.0.0.1; counts connections, login attempts and logins."""

    def __init__(self, username: str = "screenpop", secret: str = "ami-secret", *, pong: bool = True) -> None:
        self.username, self.secret, self.pong = username, secret, pong
        self.channels: list[dict[str, str]] = []  # what CoreShowChannels lists (CoreShowChannel fields)
        self.actions: list[dict[str, str]] = []
        self.connections = self.login_attempts = self.logins = 0
        self.port = 0
        self._clients: set[asyncio.StreamWriter] = set()  # logged in
        self._writers: set[asyncio.StreamWriter] = set()
        self._changed = asyncio.Event()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"ami://{self.username}:{self.secret}@127.0.0.1:{self.port}"

    async def start(self) -> AmiServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self.drop()
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> AmiServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _notify(self) -> None:
        self._changed.set()

    async def wait_for(self, predicate: Callable[[], bool], within: float = 10) -> None:
        """Return once `predicate()` holds (checked after every change), failing after `within` seconds."""
        async with asyncio.timeout(within):
            while True:
                self._changed.clear()
                if predicate():
                    return
                await self._changed.wait()

    def count(self, action: str) -> int:
        """How many actions named `action` arrived."""
        return sum(1 for a in self.actions if a.get("Action", "").lower() == action.lower())

    async def send(self, *events: dict[str, str]) -> None:
        """Send each event to every logged-in client, in order."""
        for writer in list(self._clients):
            for event in events:
                writer.write(block(event))
            try:
                await writer.drain()
            except ConnectionError:
                pass

    async def drop(self) -> None:
        """Break every connection, as a PBX restart or a network failure would."""
        for writer in list(self._writers):
            writer.close()
        await self.wait_for(lambda: not self._writers)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        self._notify()
        writer.write(BANNER)
        try:
            while not writer.is_closing():
                request = parse(await reader.readuntil(b"\r\n\r\n"))
                self.actions.append(request)
                await self._answer(request, writer)
                self._notify()
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._clients.discard(writer)
            self._writers.discard(writer)
            writer.close()
            self._notify()

    async def _answer(self, request: dict[str, str], writer: asyncio.StreamWriter) -> None:
        name = request.get("Action", "").lower()
        aid = {"ActionID": request["ActionID"]} if "ActionID" in request else {}
        if name == "login":
            self.login_attempts += 1
            if request.get("Username") == self.username and request.get("Secret") == self.secret:
                self.logins += 1
                self._clients.add(writer)
                writer.write(block({"Response": "Success", **aid, "Message": "Authentication accepted"}))
                writer.write(block({"Event": "FullyBooted", "Privilege": "system,all", "Uptime": "12",
                                    "LastReload": "12", "Status": "Fully Booted"}))
            else:
                writer.write(block({"Response": "Error", **aid, "Message": "Authentication failed"}))
                writer.close()
        elif writer not in self._clients:
            writer.write(block({"Response": "Error", **aid, "Message": "Permission denied"}))
        elif name == "ping":
            if self.pong:
                writer.write(block({"Response": "Success", **aid, "Ping": "Pong",
                                    "Timestamp": "1700000000.123456"}))
        elif name == "coreshowchannels":
            writer.write(block({"Response": "Success", **aid, "EventList": "start",
                                "Message": "Channels will follow"}))
            for channel in self.channels:
                writer.write(block({"Event": "CoreShowChannel", **aid, **channel}))
            writer.write(block({"Event": "CoreShowChannelsComplete", **aid, "EventList": "Complete",
                                "ListItems": str(len(self.channels))}))
        elif name == "logoff":
            writer.write(block({"Response": "Goodbye", **aid, "Message": "Thanks for all the fish."}))
            writer.close()
        else:
            writer.write(block({"Response": "Error", **aid, "Message": "Invalid/unknown command"}))
