"""The bus seam: how instances of screenpop pass agent messages to each other.

One instance receives a call's events and runs its lookup; the agent's socket may be on any instance.
Every message is published once on a channel; every instance subscribed to that channel receives it.

A backend is chosen by URL scheme (`memory://`, `redis://`, `rediss://`) and imported lazily, so Redis is
needed only when used. Tests may pass any `Bus` instance instead of a URL.

Delivery: at most once, in publish order per publisher, to subscribers present at publish time.
Messages are `str` (already serialised JSON or a small envelope); the bus never parses them.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from screenpop.errors import BusError as BusError  # re-exported: the errors are defined in one tree


class Subscription(abc.ABC):
    """The messages of one channel, from subscription until exit of its context."""

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[str]:
        """Yield each message published on the channel after the subscription started, in order."""

    def listen(self, callback: Callable[[str], None]) -> bool:
        """Ask for every later message to go to `callback` as it arrives, in order, instead of through the
        iteration (which then only waits for the end). True when the subscription does so; the default
        does not. `callback` must not block; what it raises is logged and the next message still comes."""
        return False

    _reconnect: Callable[[], None] | None = None

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Call `callback` each time the subscription is active again after a lost connection (what was
        published meanwhile is lost: the subscriber resyncs). An in-process bus never calls it."""
        self._reconnect = callback

    def reconnected(self) -> None:
        """For backends: the subscription is active again; tell the `on_reconnect` callback."""
        if self._reconnect is not None:
            self._reconnect()


class Bus(abc.ABC):
    """Publish/subscribe between instances."""

    immediate: bool = False
    """True when `publish` never waits (an in-process bus): a publisher may call it inline instead of
    queueing, as long as nothing it queued earlier is still waiting."""

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open connections. Called once before publish/subscribe. Raises BusError if it cannot."""

    @abc.abstractmethod
    async def disconnect(self) -> None:
        """Close connections and end every open subscription's iteration. Must not raise."""

    @abc.abstractmethod
    async def publish(self, channel: str, message: str) -> None:
        """Send `message` to every current subscriber of `channel`. Raises BusError on failure."""

    async def publish_many(self, channel: str, messages: list[str]) -> None:
        """Publish several messages in order; a backend may send them in one round trip.
        Raises BusError on failure (some of them may have been delivered)."""
        for message in messages:
            await self.publish(channel, message)

    @abc.abstractmethod
    def subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscription]:
        """Context manager: inside it, the returned Subscription yields the channel's messages.

        The subscription is active when `__aenter__` returns: anything published after that point is
        delivered. A subscriber that falls too far behind may lose messages; the backend logs it.
        Iteration ends when the context exits or the bus disconnects; unread messages are then discarded.
        """
