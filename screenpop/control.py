"""The control channel: what the instances of one cluster tell each other over the bus.

Messages (JSON objects on the channel `<bus_prefix>.control`):
    {"type": "connectors.changed", "from": <instance>}   an admin changed a connector: every other instance
                                                          reloads its connectors from the state store
    {"type": "select", "agent", "call_id", "customer_id"} an agent picked one of several matching customers:
                                                          the instance that holds the call fills the card
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from screenpop.bus import Bus, Subscription
from screenpop.calls import CallRegistry

log = logging.getLogger("screenpop")


class ControlChannel:
    """Publishes on, and (inside `serving`) listens to, the cluster's control channel."""

    def __init__(self, bus: Bus, channel: str, instance: str) -> None:
        self.bus, self.channel, self.instance = bus, channel, instance

    async def request(self, message: dict[str, object]) -> None:
        """Pass an agent's request (select) to whichever instance holds the call."""
        await self.bus.publish(self.channel, json.dumps(message))

    async def connectors_changed(self) -> None:
        """Tell the other instances to reload their connectors from the store."""
        await self.request({"type": "connectors.changed", "from": self.instance})

    @asynccontextmanager
    async def serving(self, registry: CallRegistry,
                      reload_connectors: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
        """Listen while inside: selects go to `registry`, other instances' changes to `reload_connectors`.

        The subscription is active on entry (a subscription that fails raises here); leaving stops it.
        """
        ready = asyncio.Event()
        task = asyncio.create_task(self._listen(ready, registry, reload_connectors), name="screenpop-control")
        try:
            waiting = asyncio.ensure_future(ready.wait())
            await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            if task.done():
                task.result()  # the subscription failed: say why
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _listen(self, ready: asyncio.Event, registry: CallRegistry,
                      reload_connectors: Callable[[], Awaitable[None]]) -> None:
        async with self.bus.subscribe(self.channel) as sub:
            ready.set()
            await self._serve(sub, registry, reload_connectors)

    async def _serve(self, sub: Subscription, registry: CallRegistry,
                     reload_connectors: Callable[[], Awaitable[None]]) -> None:
        async for text in sub:
            try:
                m = json.loads(text)
                if m.get("type") == "connectors.changed" and m.get("from") != self.instance:
                    await reload_connectors()
                elif m.get("type") == "select" and m.get("call_id") in registry.calls:
                    refused = await registry.select(m["agent"], m["call_id"], str(m["customer_id"]))
                    if refused:
                        log.info("select on %s by %s refused: %s", m["call_id"], m["agent"], refused)
            except Exception:
                log.exception("bad control message")
