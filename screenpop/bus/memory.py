"""The in-process bus (`memory://`): one instance, no network; the default and the reference backend.

It is a real implementation, not a mock: every subscription owns a bounded mailbox (`QueueSubscription`),
publish copies the message into each mailbox of the channel and never blocks. A subscriber that falls
`maxsize` messages behind loses its OLDEST messages (the newest are the ones an agent needs); the first
drop of each backlog is logged as a warning on the `screenpop.bus` logger and `dropped` counts them all.

A consumer that calls `listen(callback)` gets each message handed to `callback` in `put` instead (no
mailbox, no hop through a task: the agent hub does this).

`QueueSubscription` is also the mailbox of the Redis backend, so both behave the same to a consumer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import cast

from screenpop.bus.base import Bus, BusError, Subscription

__all__ = ["DEFAULT_MAXSIZE", "MemoryBus", "QueueSubscription"]

logger = logging.getLogger("screenpop.bus")

DEFAULT_MAXSIZE = 10_000
_CLOSED = object()  # the sentinel that ends iteration


class QueueSubscription(Subscription):
    """A bounded mailbox for one channel: `put` never blocks, `close` ends iteration.

    When the mailbox is full, `put` drops the oldest message to make room. Once closed, pending messages
    are discarded, later `put`s are ignored and every iteration ends.
    """

    def __init__(self, channel: str, maxsize: int = DEFAULT_MAXSIZE) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize!r}")
        self.channel = channel
        self.maxsize = maxsize
        self.dropped = 0
        """How many messages were dropped because this subscriber was too slow."""
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize)
        self._listener: Callable[[str], None] | None = None
        self._closed = False
        self._behind = False  # true from a drop until the consumer has caught up

    @property
    def closed(self) -> bool:
        """True once `close()` was called."""
        return self._closed

    def listen(self, callback: Callable[[str], None]) -> bool:
        """See `Subscription.listen`: what is queued already goes to `callback` first, now."""
        while not self._closed and not self._queue.empty():
            self._hand(callback, cast(str, self._queue.get_nowait()))
        self._listener = callback
        return True

    def _hand(self, callback: Callable[[str], None], message: str) -> None:
        try:
            callback(message)
        except Exception:  # one bad message must not stop the others
            logger.exception("bus: the listener of channel %r failed on a message", self.channel)

    def put(self, message: str) -> None:
        """Queue `message` for the consumer (or hand it to the listener), dropping the oldest one if the
        mailbox is full."""
        if self._closed:
            return
        if self._listener is not None:
            self._hand(self._listener, message)
            return
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
            if not self._behind:
                self._behind = True
                logger.warning(
                    "bus: subscriber of channel %r is too slow (%d messages queued); dropping the oldest"
                    " messages (%d dropped so far)",
                    self.channel,
                    self.maxsize,
                    self.dropped,
                )
        self._queue.put_nowait(message)

    def close(self) -> None:
        """Discard pending messages and end every iteration. Idempotent."""
        if self._closed:
            return
        self._closed = True
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(_CLOSED)

    async def __aiter__(self) -> AsyncIterator[str]:
        """Yield each queued message in order until the subscription is closed."""
        while True:
            item = await self._queue.get()
            if item is _CLOSED:
                self._queue.put_nowait(_CLOSED)  # leave it for any other iterator
                return
            if self._queue.empty():
                self._behind = False
            yield cast(str, item)


class MemoryBus(Bus):
    """Publish/subscribe inside one process; each subscription has a mailbox of `maxsize` messages."""

    immediate = True  # publish only copies into mailboxes

    def __init__(self, maxsize: int = DEFAULT_MAXSIZE) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize!r}")
        self.maxsize = maxsize
        self._subscriptions: dict[str, set[QueueSubscription]] = {}
        self._connected = False

    def __repr__(self) -> str:
        state = "connected" if self._connected else "not connected"
        return f"<MemoryBus {state}, maxsize={self.maxsize}>"

    async def connect(self) -> None:
        """Mark the bus open; nothing can fail."""
        self._connected = True

    async def disconnect(self) -> None:
        """Close the bus and end every open subscription's iteration. Idempotent, never raises."""
        self._connected = False
        subscriptions, self._subscriptions = self._subscriptions, {}
        for subs in subscriptions.values():
            for sub in subs:
                sub.close()

    async def publish(self, channel: str, message: str) -> None:
        """Put `message` in the mailbox of every current subscriber of `channel`; never blocks.

        No subscriber: nothing happens. Raises BusError before `connect()` or after `disconnect()`.
        """
        self._check_connected("publish")
        for sub in self._subscriptions.get(channel, ()):
            sub.put(message)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[QueueSubscription]:
        """Subscribe to `channel` until the context exits; see `Bus.subscribe`."""
        self._check_connected("subscribe")
        sub = QueueSubscription(channel, self.maxsize)
        self._subscriptions.setdefault(channel, set()).add(sub)
        try:
            yield sub
        finally:
            subs = self._subscriptions.get(channel)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subscriptions[channel]
            sub.close()

    async def subscriber_count(self, channel: str) -> int:
        """How many subscriptions to `channel` are open right now (for tests and metrics)."""
        return len(self._subscriptions.get(channel, ()))

    def _check_connected(self, action: str) -> None:
        if not self._connected:
            raise BusError(f"cannot {action}: the memory bus is not connected (call connect() first)")
