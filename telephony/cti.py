"""What the CTI adapters (Asterisk AMI, FreeSWITCH ESL) share: reconnecting, framing, and the book of calls.

    parse_url     ami://user:secret@host:5038 or esl://:password@host:8021 into its parts
    Backoff       exponential delays with jitter between connection attempts
    Connection    one TCP connection: a reader task frames packets into a bounded queue
    Keepalive     when to probe a quiet connection, and when an unanswered probe means it is dead
    CtiConnector  the CtiAdapter loop: connect, log in, read; after a drop, back off and do it all again
    (the per-call state lives in telephony/callbook.py)

Errors raised inside a session (the loop logs them and reconnects; none escapes `events()`):
    CtiError
    ├── ConnectionLost   the PBX closed the connection or stopped answering
    ├── LoginFailed      the PBX refused the credentials
    └── ProtocolError    the PBX said something the protocol does not allow
"""

from __future__ import annotations

import abc
import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from screenpop.models import CallEvent
from telephony.base import CtiAdapter


class CtiError(Exception):
    """A session ended; the message is safe to log (it never holds a secret)."""


class ConnectionLost(CtiError):
    """The PBX closed the connection or stopped answering."""


class LoginFailed(CtiError):
    """The PBX refused the credentials."""


class ProtocolError(CtiError):
    """The PBX sent something this protocol does not allow."""


@dataclass(frozen=True)
class Target:
    """Where a CTI adapter connects, and as whom."""

    host: str
    port: int
    username: str = field(repr=False)
    secret: str = field(repr=False)
    options: dict[str, str] = field(default_factory=dict)


def parse_url(url: str, scheme: str, default_port: int, example: str, *, need_user: bool) -> Target:
    """Split a connection URL; raises ValueError saying what was expected (never quoting the secret)."""
    try:
        u = urlsplit(url.strip())
        port = u.port or default_port
    except ValueError:
        raise ValueError(f"cannot read the URL (is the port a number from 1 to 65535?); expected {example}") from None
    if u.scheme != scheme:
        raise ValueError(f"expected {example}, got a URL with scheme {u.scheme or 'none'!r}")
    if not u.hostname:
        raise ValueError(f"no host in the URL; expected {example}")
    username, secret = unquote(u.username or ""), unquote(u.password or "")
    if need_user and not username:
        raise ValueError(f"no user name in the URL; expected {example}")
    if not secret:
        raise ValueError(f"no secret in the URL; expected {example}")
    return Target(u.hostname, port, username, secret, dict(parse_qsl(u.query)))


def seconds_option(options: dict[str, str], name: str, default: float) -> float:
    """A positive number of seconds from the URL's query, e.g. ?ping=20; ValueError when it is not one."""
    raw = options.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 1 <= value <= 3600:
        raise ValueError(f"?{name}= must be a number of seconds from 1 to 3600, got {raw[:20]!r}")
    return value


class Backoff:
    """Delays that double from `base` up to `cap`, each drawn between half and all of its step."""

    def __init__(self, base: float = 0.5, cap: float = 30.0, factor: float = 2.0) -> None:
        self.base, self.cap, self.factor = base, cap, factor
        self.attempt = 0

    def next(self) -> float:
        """The pause before the next attempt."""
        step = min(self.cap, self.base * self.factor ** self.attempt)
        self.attempt = min(self.attempt + 1, 60)  # the cap is reached long before; no float overflow
        return step / 2 + random.random() * step / 2

    def reset(self) -> None:
        """Start again from `base` (after a successful login)."""
        self.attempt = 0


class _Closed:
    def __init__(self, error: CtiError) -> None:
        self.error = error


Frame = Callable[[asyncio.StreamReader], Awaitable[Any]]


class Connection:
    """One TCP connection. A reader task frames packets into a bounded queue, so that a timeout on
    `receive` never cuts a packet in half."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, frame: Frame,
                 *, max_queue: int = 10_000, write_timeout: float = 10.0) -> None:
        self._reader, self._writer, self._frame = reader, writer, frame
        self._queue: asyncio.Queue[Any] = asyncio.Queue(max_queue)
        self._write_timeout = write_timeout
        self._task = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        try:
            while True:
                await self._queue.put(await self._frame(self._reader))
        except asyncio.IncompleteReadError:
            error: CtiError = ConnectionLost("the PBX closed the connection")
        except (asyncio.LimitOverrunError, ValueError) as err:
            error = ProtocolError(f"cannot frame a packet: {err}")
        except CtiError as err:
            error = err
        except OSError as err:
            error = ConnectionLost(f"read failed: {err}")
        await self._queue.put(_Closed(error))

    async def receive(self, wait_s: float | None = None) -> Any:
        """The next packet, or None when `wait_s` seconds pass first; raises the error that ended the reads."""
        try:
            item = await asyncio.wait_for(self._queue.get(), wait_s)
        except TimeoutError:
            return None
        if isinstance(item, _Closed):
            self._queue.put_nowait(item)  # every later receive fails the same way
            raise item.error
        return item

    async def send(self, data: bytes) -> None:
        """Write `data`; raises ConnectionLost when the PBX does not take it."""
        try:
            self._writer.write(data)
            await asyncio.wait_for(self._writer.drain(), self._write_timeout)
        except (OSError, TimeoutError) as err:
            raise ConnectionLost(f"write failed: {err or 'timed out'}") from None

    async def close(self) -> None:
        """Stop reading and close the socket; never raises."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(_Closed(ConnectionLost("the connection was closed")))  # wakes a waiting receive
        self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), 2)
        except (OSError, TimeoutError):
            pass


class Keepalive:
    """Probe every `every_s` seconds; a probe still unanswered when the next is due means a dead connection."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self.pending = False
        self._due = asyncio.get_running_loop().time() + every_s

    def wait(self) -> float:
        """Seconds until the next probe is due (the timeout for the next read)."""
        return max(0.0, self._due - asyncio.get_running_loop().time())

    def due(self) -> bool:
        """True when a probe must be sent now; raises ConnectionLost when the last one got no answer."""
        now = asyncio.get_running_loop().time()
        if now < self._due:
            return False
        if self.pending:
            raise ConnectionLost(f"no answer to the keepalive within {self.every_s:g} s")
        self.pending, self._due = True, now + self.every_s
        return True

    def answered(self) -> None:
        self.pending = False


class CtiConnector(CtiAdapter):
    """The connect / log in / read loop of a CTI adapter; a protocol fills in `_frame` and `_session`."""

    name: str
    goodbye: bytes = b""  # sent on close(), e.g. a logoff

    def __init__(self, host: str, port: int, *, backoff: Backoff | None = None, connect_timeout: float = 10.0,
                 logger: logging.Logger | None = None) -> None:
        self.host, self.port = host, port
        self.backoff = backoff or Backoff()
        self.connect_timeout = connect_timeout
        self.log = logger or logging.getLogger(f"screenpop.telephony.{self.name}")
        self._closed = asyncio.Event()
        self._conn: Connection | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _greet(self, reader: asyncio.StreamReader) -> None:
        """Read what the PBX says before any packet (AMI's banner line). Default: nothing."""

    @abc.abstractmethod
    async def _frame(self, reader: asyncio.StreamReader) -> Any:
        """Read exactly one packet from `reader` and return it parsed.

        Raises asyncio.IncompleteReadError at end of stream (the connection is lost) and ProtocolError for
        a packet that breaks the protocol's framing. Runs in the connection's reader task.
        """

    @abc.abstractmethod
    def _session(self, conn: Connection) -> AsyncIterator[CallEvent]:
        """Log in on a fresh connection, then yield CallEvents until it drops.

        Calls `self._logged_in()` once the PBX accepted the credentials. Raises LoginFailed when it refused
        them, ConnectionLost when the PBX closes or stops answering the keepalive, ProtocolError when it
        answers something the protocol does not allow. Per-call state lives outside the session so that a
        call still ringing survives a reconnect.
        """

    def _logged_in(self) -> None:
        self.backoff.reset()
        self.log.info("%s: connected and logged in to %s:%s", self.name, self.host, self.port)

    async def events(self) -> AsyncIterator[CallEvent]:
        """Yield CallEvents until close(); connection problems are logged and retried with backoff."""
        while not self._closed.is_set():
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port, limit=1 << 20), self.connect_timeout)
            except (OSError, TimeoutError) as err:
                problem = f"cannot connect to {self.host}:{self.port}: {err or 'timed out'}"
            else:
                if self._closed.is_set():  # closed while connecting
                    writer.close()
                    return
                conn: Connection | None = None
                self._writer = writer
                try:
                    await asyncio.wait_for(self._greet(reader), self.connect_timeout)
                    conn = self._conn = Connection(reader, writer, self._frame)
                    async for event in self._session(conn):
                        yield event
                    problem = "the session ended"
                except TimeoutError:
                    problem = f"{self.host}:{self.port} did not greet within {self.connect_timeout:g} s"
                except CtiError as err:
                    problem = f"{self.host}:{self.port}: {err}"
                except OSError as err:
                    problem = f"{self.host}:{self.port}: {err}"
                finally:
                    self._conn = self._writer = None
                    if conn is not None:
                        await conn.close()
                    else:
                        writer.close()
            if self._closed.is_set():
                return
            delay = self.backoff.next()
            self.log.warning("%s: %s; retrying in %.1f s", self.name, problem, delay)
            try:
                await asyncio.wait_for(self._closed.wait(), delay)
            except TimeoutError:
                pass

    async def close(self) -> None:
        """Say goodbye if connected, close the connection; `events()` ends. Never raises."""
        self._closed.set()
        conn, writer = self._conn, self._writer
        if conn is not None:
            if self.goodbye:
                try:
                    await asyncio.wait_for(conn.send(self.goodbye), 1)
                except (CtiError, TimeoutError):
                    pass
            await conn.close()
        elif writer is not None:  # connected, not greeted yet: the greeting fails and events() ends
            writer.close()
