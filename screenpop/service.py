"""The service's parts, built from settings and owned by the application's lifespan.

`build_services(settings)` reads and validates everything synchronously (so a bad config stops the
start with a clear message before anything listens); `Services.start()` / `stop()` open and close the
bus, the connectors and the background tasks in order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import dataclass, field

from pydantic import ValidationError

from connectors.base import get_kind
from screenpop.admin import ConnectorAdmin
from screenpop.auth import Directory, Tokens
from screenpop.bus import Bus, bus_from_url
from screenpop.cache import CacheBackend, CacheError, SectionCache, cache_from_url
from screenpop.calls import CallRegistry
from screenpop.config import Config, ConfigError, ConnectorConfig, format_validation_error, load_config
from screenpop.gcpace import GcSettler, settle_from_now
from screenpop.hub import AgentHub
from screenpop.lookup import Lookup
from screenpop.metrics import Metrics
from screenpop.outbox import Outbox
from screenpop.settings import Settings
from screenpop.sources import Source
from screenpop.store import AdminStore, MemoryStore, store_from_url
from telephony.base import CtiAdapter
from telephony.generic import GenericWebhook

log = logging.getLogger("screenpop")


def build_source(c: ConnectorConfig, where: str) -> Source:
    """One connector instance from its config; a bad kind or option raises ConfigError naming it."""
    try:
        kind = get_kind(c.kind)
    except KeyError as err:
        raise ConfigError(f"{where}.kind: {err.args[0]}") from None
    try:
        connector = kind.from_config(c.name, c.options)
    except ValidationError as err:
        raise ConfigError(f"{where}: {format_validation_error(err, prefix='options.')}") from None
    return Source(config=c, connector=connector)


def build_sources(config: Config, source_name: str = "<config>") -> tuple[Source | None, list[Source]]:
    """Instantiate every enabled connector; a bad kind or option raises ConfigError naming it."""
    lookup = build_lookup(config, source_name)
    return lookup.identity, lookup.sections


def build_lookup(config: Config, source_name: str = "<config>") -> Lookup:
    """The Lookup over every enabled connector of `config`."""
    identity: Source | None = None
    fallback: Source | None = None
    sections: list[Source] = []
    for i, c in enumerate(config.connectors):
        if not c.enabled:
            continue
        source = build_source(c, f"{source_name}: connectors[{i}] ({c.name})")
        if c.role == "identity":
            identity = source
        elif c.role == "identity_fallback":
            fallback = source
        else:
            sections.append(source)
    lc = config.lookup
    return Lookup(identity, sections, lc.deadline_ms / 1000, fallback=fallback, suffix_digits=lc.suffix_digits,
                  rank_called_field=lc.rank_called_field, rank_activity_field=lc.rank_activity_field)


@dataclass
class Services:
    """Everything a running instance holds."""

    settings: Settings
    config: Config
    directory: Directory
    tokens: Tokens
    lookup: Lookup
    bus: Bus
    outbox: Outbox
    hub: AgentHub
    registry: CallRegistry
    webhook: GenericWebhook
    store: AdminStore = field(default_factory=MemoryStore)
    cache_backend: CacheBackend = field(default_factory=lambda: cache_from_url("memory://"))
    cache: SectionCache | None = None  # built at start, over cache_backend
    metrics: Metrics = field(default_factory=Metrics)
    admin: ConnectorAdmin = field(init=False)
    instance: str = field(default_factory=lambda: secrets.token_hex(6))
    cti: list[CtiAdapter] = field(default_factory=list)
    freeze_gc: bool = False  # the CLI sets it: after start, keep the long-lived objects out of collections
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _settler: GcSettler | None = None

    @property
    def sources(self) -> list[Source]:
        return self.lookup.sources

    def __post_init__(self) -> None:
        self.admin = ConnectorAdmin(self, self._announce_connectors)

    async def start(self) -> None:
        """Connect the bus and the store, start connectors, then the hub, the outbox and the housekeeping."""
        await self.bus.connect()
        await self.cache_backend.connect()
        self.cache = SectionCache(self.cache_backend)
        await self.store.start()
        if not self.store.durable:
            log.warning("SCREENPOP_STATE_URL is not set: connector changes made through the admin API "
                        "last until restart")
        await self.admin.reload()
        await self.hub.start()
        self.outbox.start()
        self.registry.start()
        ready = asyncio.Event()
        self._tasks.append(asyncio.create_task(self._control(ready), name="screenpop-control"))
        await ready.wait()
        for adapter in self.cti:
            self._tasks.append(asyncio.create_task(self._run_cti(adapter), name=f"cti-{adapter.name}"))
        if self.freeze_gc:
            self._settler = settle_from_now(self.registry.lookups_running)  # the GC policy: screenpop.gcpace
            self.hub.on_attach = self._settler.attached

    async def _run_cti(self, adapter: CtiAdapter) -> None:
        """Feed a CTI adapter's events to the calls; an adapter bug restarts it after a pause."""
        while True:
            try:
                async for event in adapter.events():
                    await self.registry.handle(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("CTI adapter %s failed; restarting it in 1 s", adapter.name)
            await asyncio.sleep(1)

    async def stop(self) -> None:
        """Stop in reverse order; never raises."""
        if self._settler is not None:
            self._settler.close()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for adapter in self.cti:
            try:
                await adapter.close()
            except Exception:
                log.exception("closing CTI adapter %s failed", adapter.name)
        await self.registry.close()
        await self.outbox.close()
        await self.hub.close()
        await self.admin.retire()
        for s in self.sources:
            try:
                await s.connector.close()
            except Exception:
                log.exception("closing connector %s failed", s.config.name)
        await self.store.close()
        if self.cache is not None:
            await self.cache.close()
        await self.cache_backend.close()
        await self.bus.disconnect()

    async def _announce_connectors(self) -> None:
        """Tell the other instances to reload their connectors from the store."""
        await self.request({"type": "connectors.changed", "from": self.instance})

    async def request(self, message: dict[str, object]) -> None:
        """Pass an agent's request (select) to whichever instance holds the call."""
        await self.bus.publish(f"{self.settings.bus_prefix}.control", json.dumps(message))

    async def _control(self, ready: asyncio.Event) -> None:
        async with self.bus.subscribe(f"{self.settings.bus_prefix}.control") as sub:
            ready.set()
            async for text in sub:
                try:
                    m = json.loads(text)
                    if m.get("type") == "connectors.changed" and m.get("from") != self.instance:
                        await self.admin.reload()
                    elif m.get("type") == "select" and m.get("call_id") in self.registry.calls:
                        refused = await self.registry.select(m["agent"], m["call_id"], str(m["customer_id"]))
                        if refused:
                            log.info("select on %s by %s refused: %s", m["call_id"], m["agent"], refused)
                except Exception:
                    log.exception("bad control message")


def build_services(settings: Settings, *, bus: Bus | None = None, config: Config | None = None) -> Services:
    """Read the config and build every part; raises ConfigError with file, field and reason."""
    if config is None:
        config = load_config(settings.config)
    lookup = build_lookup(config, settings.config or "<config>")
    directory = Directory(config.agents)
    if settings.session_secret is None:
        log.warning("SCREENPOP_SESSION_SECRET is not set: logins last until restart and work on this instance only")
        secret = secrets.token_bytes(32)
    else:
        secret = settings.session_secret.get_secret_value().encode()
    tokens = Tokens(secret, settings.session_ttl_s)
    bus = bus or bus_from_url(settings.bus_url)
    outbox = Outbox(bus, channel=f"{settings.bus_prefix}.agents")
    registry = CallRegistry(directory, lookup, outbox, region=settings.default_region,
                            ttl_s=settings.call_ttl_s, max_calls=settings.max_calls)
    secret_value = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    if not secret_value:
        log.warning("SCREENPOP_WEBHOOK_SECRET is not set: every webhook will be refused with 401")
    hub = AgentHub(bus, channel=f"{settings.bus_prefix}.agents", call_ttl_s=settings.call_ttl_s)
    services = Services(
        settings=settings, config=config, directory=directory, tokens=tokens, lookup=lookup, bus=bus,
        outbox=outbox, hub=hub, registry=registry, webhook=GenericWebhook(secret_value),
        cti=build_cti(settings), store=store_from_url(settings.state_url),
        cache_backend=_cache_backend(settings.cache_url),
    )
    metrics = services.metrics
    metrics.watch(lambda: services.lookup.sources, hub)
    for source in lookup.sources:
        source.observer = metrics.observe_section
    registry.on_event = metrics.count_event
    registry.on_pop = metrics.observe_pop
    return services


def _cache_backend(url: str) -> CacheBackend:
    try:
        return cache_from_url(url)
    except CacheError as err:
        raise ConfigError(f"SCREENPOP_CACHE_URL: {err}") from None


def build_cti(settings: Settings) -> list[CtiAdapter]:
    """The CTI adapters named by SCREENPOP_AMI_URL / SCREENPOP_ESL_URL (imported only when set)."""
    adapters: list[CtiAdapter] = []
    try:
        if settings.ami_url is not None:
            from telephony.asterisk import AmiAdapter

            adapters.append(AmiAdapter.from_url(settings.ami_url.get_secret_value()))
        if settings.esl_url is not None:
            from telephony.freeswitch import EslAdapter

            adapters.append(EslAdapter.from_url(settings.esl_url.get_secret_value()))
    except ValueError as err:  # the adapters' messages never contain the secret
        raise ConfigError(f"CTI connection URL: {err}") from None
    return adapters
