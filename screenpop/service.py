"""The service's parts, built from settings, and their one lifespan.

`build_services(settings)` reads and validates everything synchronously (so a bad config stops the start
with a clear message before anything listens). `Services.run()` is the lifespan: each resource is opened
and its close registered right after it in one AsyncExitStack, so leaving closes them in reverse order
(a close that fails is logged; the others still run). `supervise_cti` keeps a CTI adapter's events flowing.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from screenpop.admin import ConnectorAdmin
from screenpop.auth import Directory, Tokens
from screenpop.bus import Bus, bus_from_url
from screenpop.cache import CacheBackend, CacheError, SectionCache, cache_from_url
from screenpop.calls import CallRegistry
from screenpop.callstore import CallStore, CallStoreError, callstore_from_url
from screenpop.config import Config, ConfigError, load_config
from screenpop.control import ControlChannel
from screenpop.gcpace import GcSettler
from screenpop.hub import AgentHub
from screenpop.lookup import Lookup
from screenpop.metrics import Metrics
from screenpop.models import CallEvent
from screenpop.outbox import Outbox
from screenpop.settings import Settings
from screenpop.sources import Source
from screenpop.store import AdminStore, store_from_url
from screenpop.wiring import SourceFactory, build_cti
from telephony.base import CtiAdapter
from telephony.generic import GenericWebhook

log = logging.getLogger("screenpop")


@dataclass
class Services:
    """Everything a running instance holds."""

    settings: Settings
    config: Config
    directory: Directory
    tokens: Tokens
    bus: Bus
    outbox: Outbox
    hub: AgentHub
    registry: CallRegistry
    webhook: GenericWebhook
    store: AdminStore
    calls: CallStore
    cache_backend: CacheBackend
    cache: SectionCache
    metrics: Metrics
    admin: ConnectorAdmin
    control: ControlChannel
    gc_settler: GcSettler
    cti: list[CtiAdapter] = field(default_factory=list)
    freeze_gc: bool = False  # the CLI sets it: after start, keep the long-lived objects out of collections

    @property
    def lookup(self) -> Lookup:
        """The lookup in use (the call registry holds it; a connector change replaces it)."""
        return self.registry.lookup

    @property
    def sources(self) -> list[Source]:
        return self.lookup.sources

    @asynccontextmanager
    async def run(self) -> AsyncIterator[Services]:
        """Open everything in order (bus, cache, store, connectors, hub, outbox, calls, control channel,
        CTI adapters); inside, the instance serves; on exit, everything is closed in reverse order."""
        async with AsyncExitStack() as stack:
            await self.bus.connect()
            _closing(stack, "the bus", self.bus.disconnect)
            await self.cache_backend.connect()
            _closing(stack, "the cache backend", self.cache_backend.close)
            _closing(stack, "the section cache", self.cache.close)
            await self.calls.connect()
            _closing(stack, "the call store", self.calls.close)
            await self.store.start()
            _closing(stack, "the state store", self.store.close)
            if not self.store.durable:
                log.warning("SCREENPOP_STATE_URL is not set: connector changes made through the admin API "
                            "last until restart")
            await self.admin.reload()  # builds and starts the connectors
            _closing(stack, "the connectors", self.admin.close)
            await self.hub.start()
            _closing(stack, "the agent hub", self.hub.close)
            self.outbox.start()
            _closing(stack, "the outbox", self.outbox.close)
            self.registry.start()
            _closing(stack, "the calls", self.registry.close)
            await stack.enter_async_context(self.control.serving(self.admin.reload))
            for adapter in self.cti:
                _closing(stack, f"CTI adapter {adapter.name}", adapter.close)
                _task(stack, supervise_cti(adapter, self.registry.handle), f"cti-{adapter.name}")
            if self.freeze_gc:
                self.gc_settler.start()  # the GC policy: screenpop.gcpace
                stack.callback(self.gc_settler.close)
            yield self


def _closing(stack: AsyncExitStack, what: str, close: Callable[[], Awaitable[object]]) -> None:
    """Register `close` on the stack; when it fails, log it (the closes after it still run)."""

    async def closing() -> None:
        try:
            await close()
        except Exception:
            log.exception("closing %s failed", what)

    stack.push_async_callback(closing)


def _task(stack: AsyncExitStack, coro: Coroutine[Any, Any, None], name: str) -> None:
    """Run `coro` as a task until the stack closes, then cancel it and wait for its end."""
    task = asyncio.create_task(coro, name=name)

    async def cancel() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    stack.push_async_callback(cancel)


async def supervise_cti(adapter: CtiAdapter, handle: Callable[[CallEvent], Awaitable[object]], *,
                        pause_s: float = 1.0, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
    """Pass each of the adapter's events to `handle` until cancelled. The adapter reconnects by itself;
    if it fails anyway (a bug) or its events end, it is logged and started again after `pause_s`."""
    while True:
        try:
            async for event in adapter.events():
                await handle(event)
        except Exception:
            log.exception("CTI adapter %s failed; restarting it in %g s", adapter.name, pause_s)
        await sleep(pause_s)


def build_services(settings: Settings, *, bus: Bus | None = None, config: Config | None = None) -> Services:
    """Read the config and build every part; raises ConfigError with file, field and reason."""
    if config is None:
        config = load_config(settings.config)
    metrics = Metrics()
    cache_backend = _cache_backend(settings.cache_url)
    cache = SectionCache(cache_backend)
    sources = SourceFactory(cache=cache, observer=metrics.observe_section)
    lookup = sources.lookup(config, settings.config or "<config>")
    directory = Directory(config.agents)
    if settings.session_secret is None:
        log.warning("SCREENPOP_SESSION_SECRET is not set: logins last until restart and work on this instance only")
        secret = secrets.token_bytes(32)
    else:
        secret = settings.session_secret.get_secret_value().encode()
    tokens = Tokens(secret, settings.session_ttl_s)
    bus = bus or bus_from_url(settings.bus_url)
    outbox = Outbox(bus, channel=f"{settings.bus_prefix}.agents")
    calls = _call_store(settings)
    # metrics, all here: sections through the sources' observer (above), events and pops from the calls,
    # sources and sockets read at scrape time
    registry = CallRegistry(directory, lookup, outbox, store=calls, region=settings.default_region,
                            ttl_s=settings.call_ttl_s, max_calls=settings.max_calls,
                            on_event=metrics.count_event, on_pop=metrics.observe_pop)
    secret_value = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    if not secret_value:
        log.warning("SCREENPOP_WEBHOOK_SECRET is not set: every webhook will be refused with 401")
    gc_settler = GcSettler(registry.lookups_running)  # does nothing until started (`freeze_gc`)
    hub = AgentHub(bus, channel=f"{settings.bus_prefix}.agents", snapshots=calls.active,
                   on_attach=gc_settler.attached)
    metrics.watch(lambda: registry.lookup.sources, hub)
    store = store_from_url(settings.state_url)
    control = ControlChannel(bus, f"{settings.bus_prefix}.control", instance=secrets.token_hex(6))
    admin = ConnectorAdmin(config, store, sources, registry, announce=control.connectors_changed)
    return Services(
        settings=settings, config=config, directory=directory, tokens=tokens, bus=bus, outbox=outbox, hub=hub,
        registry=registry, webhook=GenericWebhook(secret_value), store=store, calls=calls, cache_backend=cache_backend,
        cache=cache, metrics=metrics, admin=admin, control=control, cti=build_cti(settings), gc_settler=gc_settler,
    )


def _call_store(settings: Settings) -> CallStore:
    url = settings.calls_store_url()
    try:
        if url.startswith("memory:"):
            return callstore_from_url(url, ttl_s=settings.call_ttl_s, max_calls=settings.max_calls)
        return callstore_from_url(url, ttl_s=settings.call_ttl_s, prefix=settings.bus_prefix)
    except CallStoreError as err:
        raise ConfigError(f"SCREENPOP_CALLS_URL: {err}") from None


def _cache_backend(url: str) -> CacheBackend:
    try:
        return cache_from_url(url)
    except CacheError as err:
        raise ConfigError(f"SCREENPOP_CACHE_URL: {err}") from None
