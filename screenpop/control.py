"""The control channel: what the instances of one cluster tell each other over the bus.

Messages (JSON objects on the channel `<bus_prefix>.control`):
    {"type": "connectors.changed", "from": <instance>}   an admin changed a connector: every other instance
                                                          reloads its connectors from the state store
    {"type": "agents.changed", "from": <instance>}        an admin changed an agent: every other instance
                                                          reloads its directory from the state store
    {"type": "health", "from": <instance>, "connectors": {name: {...}}}   an instance's connector numbers,
                                                          every few seconds (screenpop/healthboard.py)

(An agent's `select` needs no message: any instance applies it to the shared call store.)
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from screenpop.bus import Bus, Subscription

log = logging.getLogger("screenpop")


class ControlChannel:
    """Publishes on, and (inside `serving`) listens to, the cluster's control channel."""

    def __init__(self, bus: Bus, channel: str, instance: str) -> None:
        self.bus, self.channel, self.instance = bus, channel, instance
        self._on_health: Callable[[str, Any], None] | None = None

    async def connectors_changed(self) -> None:
        """Tell the other instances to reload their connectors from the store."""
        await self.bus.publish(self.channel, json.dumps({"type": "connectors.changed", "from": self.instance}))

    async def health(self, connectors: dict[str, Any]) -> None:
        """Share this instance's connector health with the others."""
        await self.bus.publish(self.channel, json.dumps({"type": "health", "from": self.instance,
                                                         "connectors": connectors}))

    async def agents_changed(self) -> None:
        """Tell the other instances to reload their agents from the store."""
        await self.bus.publish(self.channel, json.dumps({"type": "agents.changed", "from": self.instance}))

    @asynccontextmanager
    async def serving(self, reload_connectors: Callable[[], Awaitable[None]],
                      reload_agents: Callable[[], Awaitable[None]] | None = None,
                      on_health: Callable[[str, Any], None] | None = None) -> AsyncIterator[None]:
        """Listen while inside: other instances' connector changes go to `reload_connectors`, their agent
        changes to `reload_agents`, their connector health to `on_health(instance, connectors)`.

        The subscription is active on entry (a subscription that fails raises here); leaving stops it.
        """
        ready = asyncio.Event()
        handlers = {"connectors.changed": reload_connectors}
        if reload_agents is not None:
            handlers["agents.changed"] = reload_agents
        self._on_health = on_health
        task = asyncio.create_task(self._listen(ready, handlers), name="screenpop-control")
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

    async def _listen(self, ready: asyncio.Event, handlers: dict[str, Callable[[], Awaitable[None]]]) -> None:
        async with self.bus.subscribe(self.channel) as sub:
            ready.set()
            await self._serve(sub, handlers)

    async def _serve(self, sub: Subscription, handlers: dict[str, Callable[[], Awaitable[None]]]) -> None:
        async for text in sub:
            try:
                m = json.loads(text)
                if m.get("from") == self.instance:
                    continue
                if m.get("type") == "health" and self._on_health is not None:
                    self._on_health(str(m.get("from")), m.get("connectors"))
                    continue
                handler = handlers.get(m.get("type"))
                if handler is not None:
                    await handler()
            except Exception:
                log.exception("bad control message")
