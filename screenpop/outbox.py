"""The outbox: agent messages leave this instance through one ordered queue onto the bus.

Each message arrives serialised once (`screenpop.protocol`), whatever the number of its recipients, and
goes onto the bus in the protocol's envelope. One task publishes in order, so a section can never overtake
the card it belongs to, even on a bus with several connections. On an in-process bus a message is
published at once, but only when nothing published earlier is still on its way (queued, or in a batch
being retried): order first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from screenpop.bus import Bus
from screenpop.protocol import Message, envelope

log = logging.getLogger("screenpop.outbox")

CHANNEL = "screenpop.agents"
MAX_BATCH = 256


class Outbox:
    """Ordered, bounded publication of agent messages."""

    def __init__(self, bus: Bus, channel: str = CHANNEL, maxsize: int = 10_000) -> None:
        self.bus = bus
        self.channel = channel
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize)
        self._task: asyncio.Task[None] | None = None
        self._in_batch = False  # a batch taken from the queue is not published yet: nothing may pass it
        self.published = 0
        self.failed = 0

    async def send(self, recipients: Iterable[str], message: Message) -> None:
        """Queue `message` for `recipients`; waits only when the queue is full (back-pressure)."""
        to = sorted(set(recipients))
        if not to:
            return
        text = envelope(to, message)
        if self.bus.immediate and self._task is not None and not self._in_batch and self._queue.empty():
            try:  # an in-process bus hands it over without waiting; nothing queued is overtaken
                await self.bus.publish(self.channel, text)
                self.published += 1
                return
            except Exception as err:  # the queue's retries take it from here
                log.warning("bus publish failed, queued for a retry: %s", err)
        await self._queue.put(text)

    def start(self) -> None:
        """Start the publishing task."""
        self._task = asyncio.create_task(self._run(), name="screenpop-outbox")

    async def _run(self) -> None:
        """Publish in order; whatever queued up meanwhile goes in one batch (one Redis round trip)."""
        while True:
            batch = [await self._queue.get()]
            self._in_batch = True
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            stop = None in batch
            items = [m for m in batch if m is not None]
            for attempt in range(3):
                try:
                    if items:
                        await self.bus.publish_many(self.channel, items)
                    self.published += len(items)
                    break
                except Exception as err:
                    if attempt == 2:
                        self.failed += len(items)
                        log.error("bus publish failed, %d message(s) dropped: %s", len(items), err)
                    else:
                        await asyncio.sleep(0.05 * (attempt + 1))
            self._in_batch = False
            if stop:
                return

    async def close(self, timeout_s: float = 2.0) -> None:
        """Publish what is queued (bounded by timeout_s), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(self._task)
        except TimeoutError:
            self._task.cancel()
        self._task = None
