"""The outbox: agent messages leave this instance through one ordered queue onto the bus.

A message is serialised once, whatever the number of recipients, into an envelope
`"<agent id>,<agent id>\\n<JSON>"` (agent ids hold no comma or newline). One task publishes in order, so a
section can never overtake the card it belongs to, even on a bus with several connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable
from typing import Any

from screenpop.bus import Bus

log = logging.getLogger("screenpop.outbox")

CHANNEL = "screenpop.agents"
MAX_BATCH = 256


def envelope(recipients: Iterable[str], payload: str, kind: str = "", call_id: str = "") -> str:
    """Pack a serialised message with its recipients, its type and its call id."""
    call_id = call_id.replace("\t", " ").replace("\n", " ")
    return f"{','.join(recipients)}\t{kind}\t{call_id}\n{payload}"


def open_envelope(text: str) -> tuple[list[str], str, str, str]:
    """Unpack an envelope into (recipients, type, call id, serialised message)."""
    head, _, payload = text.partition("\n")
    to, _, rest = head.partition("\t")
    kind, _, call_id = rest.partition("\t")
    return [r for r in to.split(",") if r], kind, call_id, payload


def dumps(message: dict[str, Any]) -> str:
    """Compact JSON, the one serialisation of a message."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


class Outbox:
    """Ordered, bounded publication of agent messages."""

    def __init__(self, bus: Bus, channel: str = CHANNEL, maxsize: int = 10_000) -> None:
        self.bus = bus
        self.channel = channel
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize)
        self._task: asyncio.Task[None] | None = None
        self._busy = False  # a batch taken from the queue is being published
        self.published = 0
        self.failed = 0

    async def send(self, recipients: Iterable[str], message: dict[str, Any]) -> None:
        """Queue `message` for `recipients`; waits only when the queue is full (back-pressure)."""
        call_id = message.get("call_id") or message.get("call", {}).get("call_id", "")
        await self.send_text(recipients, dumps(message), message["type"], call_id)

    async def send_text(self, recipients: Iterable[str], payload: str, kind: str, call_id: str) -> None:
        """As `send`, for a message already serialised (`payload`) of type `kind` about `call_id`."""
        to = sorted(set(recipients))
        if not to:
            return
        text = envelope(to, payload, kind, call_id)
        if self.bus.immediate and self._task is not None and not self._busy and self._queue.empty():
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
            self._busy = True  # until this batch is out, nothing may be published past it
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
            self._busy = False
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
