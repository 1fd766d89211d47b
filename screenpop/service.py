"""The service's parts, built from settings, and their one lifespan.

`build_services(settings)` reads and validates everything synchronously (so a bad config stops the start
with a clear message before anything listens). `Services.run()` is the lifespan: each resource is opened
and its close registered right after it in one AsyncExitStack, so leaving closes them in reverse order
(a close that fails is logged; the others still run). `supervise_cti` (screenpop/ctilink.py) runs each CTI
connection while this instance holds its lease.

Shutdown (SIGTERM, screenpop/cli.py): `drain()` first (readiness fails, webhooks answer 503, the CTI
connections close and their leases are released so another instance takes over at once); then uvicorn stops
accepting, lets requests in flight finish and closes agent sockets with 1012; then `run()` exits: running
lookups get up to the lookup deadline, and everything closes in reverse.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from connectors.base import Lanes
from screenpop.access import AccessRecorder, access_log_for
from screenpop.admin import ConnectorAdmin
from screenpop.agentadmin import AgentAdmin
from screenpop.auth import Directory, Tokens
from screenpop.bus import Bus, bus_from_url
from screenpop.cache import CacheBackend, CacheError, SectionCache, cache_from_url
from screenpop.calls import CallRegistry
from screenpop.callstore import CallStore, CallStoreError, callstore_from_url
from screenpop.config import Config, ConfigError, load_config
from screenpop.control import ControlChannel
from screenpop.ctilink import CtiLink, supervise_cti
from screenpop.gcpace import GcSettler
from screenpop.healthboard import HealthBoard
from screenpop.hub import AgentHub
from screenpop.journal import HistoryConnector, JournalService
from screenpop.journalstore import journal_store_from_url
from screenpop.lease import LeaseError, LeaseKeeper, LeaseStore, lease_key, lease_store_from_url, pbx_name
from screenpop.lookup import Lookup
from screenpop.masking import Masker, Rules
from screenpop.metrics import Metrics
from screenpop.models import Card
from screenpop.outbox import Outbox
from screenpop.probes import Probes
from screenpop.sessions import MemorySessions, SessionGuard, SessionStore, SessionStoreError, sessions_from_url
from screenpop.settings import Settings
from screenpop.sources import Source
from screenpop.store import AdminStore, store_from_url
from screenpop.throttle import LoginThrottle, storage_for
from screenpop.wiring import SourceFactory, build_cti, build_journal, lanes_from_settings
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
    leases: LeaseStore
    probes: Probes
    agents: AgentAdmin
    access: AccessRecorder
    masker: Masker
    health: HealthBoard
    journal: JournalService
    sessions: SessionStore
    guard: SessionGuard
    throttle: LoginThrottle
    cti: list[CtiLink] = field(default_factory=list)
    freeze_gc: bool = False  # the CLI sets it: after start, keep the long-lived objects out of collections
    _cti_tasks: list[asyncio.Task[None]] = field(default_factory=list)

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
            await self.agents.reload()  # the file's agents with the stored ones
            await self.access.start()
            _closing(stack, "the access audit", self.access.close)
            await self.journal.start()
            _closing(stack, "the journal", self.journal.close)
            await self.admin.reload()  # builds and starts the connectors
            _closing(stack, "the connectors", self.admin.close)
            await self.sessions.start()
            _closing(stack, "the session store", self.sessions.close)
            await self.hub.start()
            _closing(stack, "the agent hub", self.hub.close)
            self.guard.start()
            _closing(stack, "the session guard", self.guard.close)
            self.outbox.start()
            _closing(stack, "the outbox", self.outbox.close)
            self.registry.start()
            _closing(stack, "the calls", self.registry.close)
            _closing(stack, "the lookups in flight", self._finish_lookups)
            await stack.enter_async_context(self.control.serving(self.admin.reload, self.agents.reload,
                                                                 self.health.receive))
            _task(stack, self.health.run(), "screenpop-health")
            _closing(stack, "the lease store", self.leases.close)
            for link in self.cti:
                self._cti_tasks.append(_task(stack, supervise_cti(link, self.registry.handle), f"cti-{link.name}"))
            if self.freeze_gc:
                self.gc_settler.start()  # the GC policy: screenpop.gcpace
                stack.callback(self.gc_settler.close)
            yield self

    def drain(self) -> None:
        """Begin the shutdown (SIGTERM): fail readiness, refuse webhooks with 503, close the CTI connections and
        release their leases (another instance takes over at once). Idempotent."""
        if self.probes.draining:
            return
        self.probes.draining = True
        log.info("draining: /readyz fails, webhooks answer 503, CTI leases released")
        for task in self._cti_tasks:
            task.cancel()  # supervise_cti closes its adapter, then releases the lease

    async def _finish_lookups(self, poll_s: float = 0.05) -> None:
        """Let running lookups settle, up to the lookup deadline (each settles by then)."""
        deadline = asyncio.get_running_loop().time() + self.lookup.deadline_s + 0.5
        while self.registry.lookups_running() and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(poll_s)


def _closing(stack: AsyncExitStack, what: str, close: Callable[[], Awaitable[object]]) -> None:
    """Register `close` on the stack; when it fails, log it (the closes after it still run)."""

    async def closing() -> None:
        try:
            await close()
        except Exception:
            log.exception("closing %s failed", what)

    stack.push_async_callback(closing)


def _task(stack: AsyncExitStack, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    """Run `coro` as a task until the stack closes, then cancel it and wait for its end."""
    task = asyncio.create_task(coro, name=name)

    async def cancel() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    stack.push_async_callback(cancel)
    return task


def build_services(settings: Settings, *, bus: Bus | None = None, config: Config | None = None) -> Services:
    """Read the config and build every part; raises ConfigError with file, field and reason."""
    if config is None:
        config = load_config(settings.config)
    metrics = Metrics()
    cache_backend = _cache_backend(settings.cache_url)
    cache = SectionCache(cache_backend)
    directory = Directory(config.agents, settings.login_hashes_at_once)
    secret = (secrets.token_bytes(32) if settings.session_secret is None
              else settings.session_secret.get_secret_value().encode())
    tokens = Tokens(secret, settings.session_ttl_s)  # the benchmark floor's form; logins use `sessions`
    try:
        sessions = sessions_from_url(settings.bus_url, settings.bus_prefix, settings.session_ttl_s)
    except SessionStoreError as err:
        raise ConfigError(f"SCREENPOP_BUS_URL: {err}") from None
    if isinstance(sessions, MemorySessions):
        log.info("sessions are kept in memory: logins last until restart and work on this instance only")
    throttle = LoginThrottle(storage_for(settings.bus_url, settings.bus_prefix), settings.login_failures_per_user,
                             settings.login_failures_per_address)
    bus = bus or bus_from_url(settings.bus_url)
    outbox = Outbox(bus, channel=f"{settings.bus_prefix}.agents")
    instance = secrets.token_hex(6)
    calls = _call_store(settings, instance)
    store = store_from_url(settings.state_url)
    slot: list[CallRegistry] = []
    masker = Masker(_rules(lambda: slot[0].lookup), directory.role_of)
    access = AccessRecorder(access_log_for(store), retention_days=settings.access_retention_days, masker=masker,
                            role_of=directory.role_of, calls=calls)
    lanes = lanes_from_settings(settings)
    journal = JournalService(journal_store_from_url(settings.state_url), calls, outbox,
                             writer=build_journal(config, settings.config or "<config>", lanes),
                             names=functools.partial(_agent_name, directory),
                             dispositions=[d.id for d in config.wrapup.dispositions],
                             retry_base_s=config.wrapup.retry_base_s, retry_max_s=config.wrapup.retry_max_s)
    sources = SourceFactory(cache=cache, observer=metrics.observe_section, lanes=lanes,
                            history=HistoryConnector(journal, config.wrapup.history))
    lookup = sources.lookup(config, settings.config or "<config>")
    # metrics, all here: sections through the sources' observer (above), events and pops from the calls,
    # sources and sockets read at scrape time
    registry = CallRegistry(directory, lookup, outbox, store=calls, region=settings.default_region,
                            ttl_s=settings.call_ttl_s, max_calls=settings.max_calls,
                            on_event=metrics.count_event, on_pop=metrics.observe_pop, masker=masker,
                            on_delivered=access.delivered, instance=instance)
    slot.append(registry)
    secret_value = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    if not secret_value:
        log.warning("SCREENPOP_WEBHOOK_SECRET is not set: every webhook will be refused with 401")
    gc_settler = GcSettler(registry.lookups_running)  # does nothing until started (`freeze_gc`)
    hub = AgentHub(bus, channel=f"{settings.bus_prefix}.agents", snapshots=_masked_snapshots(calls, masker),
                   on_attach=gc_settler.attached, routing=calls)
    metrics.watch(lambda: registry.lookup.sources, hub)
    control = ControlChannel(bus, f"{settings.bus_prefix}.control", instance=instance)
    leases, cti = _cti_links(settings, instance)
    probes = Probes(instance, {"bus": leases.ping, "state store": store.overrides,
                               "call store": functools.partial(calls.get, "readyz-probe")},
                    cti=lambda: {link.name: link.state for link in cti})
    admin = ConnectorAdmin(config, store, sources, registry, announce=control.connectors_changed,
                           on_reload=_journal_follows(journal, config, lanes))
    return Services(
        settings=settings, config=config, directory=directory, tokens=tokens, bus=bus, outbox=outbox, hub=hub,
        registry=registry, webhook=GenericWebhook(secret_value), store=store, calls=calls,
        cache_backend=cache_backend,
        cache=cache, metrics=metrics, admin=admin, control=control, cti=cti, gc_settler=gc_settler,
        leases=leases, probes=probes, masker=masker, access=access,
        health=HealthBoard(lambda: registry.lookup.sources, control.health),
        agents=AgentAdmin(config, store, directory, announce=control.agents_changed),
        journal=journal, sessions=sessions, guard=SessionGuard(sessions), throttle=throttle,
    )


def _journal_follows(journal: JournalService, config: Config, lanes: Lanes) -> Callable[[Config], Awaitable[None]]:
    """After each reload of the connectors: when the journal connector in effect changed (the admin console,
    on any instance), the wrap-ups are delivered through the new one from then on."""
    def in_effect(c: Config) -> dict[str, Any] | None:
        found = next((x for x in c.connectors if x.role == "journal" and x.enabled), None)
        return found.model_dump(mode="json") if found is not None else None

    current = [in_effect(config)]

    async def follow(now: Config) -> None:
        wanted = in_effect(now)
        if wanted == current[0]:
            return
        writer = build_journal(now, "admin", lanes)  # checked by the admin API before it was stored
        await journal.replace_writer(writer)
        current[0] = wanted
        log.info("the wrap-up journal now writes through %s", writer.name if writer else "nothing (kept here)")

    return follow


def _rules(lookup: Callable[[], Lookup]) -> Callable[[], Rules]:
    """The masking rules of the connectors in use, by connector name (worked out again when they change)."""
    seen: list[tuple[Lookup, Rules]] = []

    def rules() -> Rules:
        current = lookup()
        if not seen or seen[0][0] is not current:
            seen[:] = [(current, {s.name: list(s.config.masking) for s in current.sources if s.config.masking})]
        return seen[0][1]

    return rules


def _masked_snapshots(calls: CallStore, masker: Masker) -> Callable[[str], Awaitable[list[Any]]]:
    """An agent's active cards as their role may see them (the hub's snapshots)."""

    async def snapshots(agent_id: str) -> list[Any]:
        cards: list[Card] = await calls.active(agent_id)
        if not masker.active():
            return cards
        role = masker.role_of(agent_id)
        return [masker.card(c, role)[0] if isinstance(c, Card) else c for c in cards]

    return snapshots


def _cti_links(settings: Settings, owner: str) -> tuple[LeaseStore, list[CtiLink]]:
    """The lease store (the bus's Redis, else memory) and one CtiLink per CTI URL, each with its lease. The
    store's TTL is 0.8 x SCREENPOP_CTI_LEASE_S and a standby tries every 0.1 x: a takeover within the setting."""
    try:
        leases = lease_store_from_url(settings.bus_url)
    except LeaseError as err:
        raise ConfigError(f"SCREENPOP_BUS_URL: {err}") from None
    links: list[CtiLink] = []
    ttl_s = settings.cti_lease_s * 0.8
    for (_, secret), adapter in zip(settings.cti_connections(), build_cti(settings), strict=True):
        url = secret.get_secret_value()
        keeper = LeaseKeeper(leases, lease_key(settings.bus_prefix, url), owner, ttl_s,
                             retry_s=settings.cti_lease_s * 0.1)
        links.append(CtiLink(pbx_name(url), _adapters(adapter, url), keeper))
    return leases, links


def _adapters(adapter: CtiAdapter, url: str) -> Callable[[], CtiAdapter]:
    """`adapter` (built and checked at start) for the first hold, a new one of its kind for each later one."""
    first = [adapter]

    def make() -> CtiAdapter:
        return first.pop() if first else type(adapter).from_url(url)

    return make


def _agent_name(directory: Directory, agent_id: str) -> str:
    agent = directory.get(agent_id)
    return (agent.name if agent is not None else "") or agent_id


def _call_store(settings: Settings, instance: str) -> CallStore:
    url = settings.calls_store_url()
    try:
        if url.startswith("memory:"):
            return callstore_from_url(url, ttl_s=settings.call_ttl_s, max_calls=settings.max_calls)
        if url != settings.bus_url:
            return callstore_from_url(url, ttl_s=settings.call_ttl_s, prefix=settings.bus_prefix)
        # on the bus's own Redis, a change's messages are published with it, in the order of the changes, and
        # only to the instances holding a socket of a recipient
        return callstore_from_url(url, ttl_s=settings.call_ttl_s, prefix=settings.bus_prefix,
                                  channel=f"{settings.bus_prefix}.agents", instance=instance)
    except CallStoreError as err:
        raise ConfigError(f"SCREENPOP_CALLS_URL: {err}") from None


def _cache_backend(url: str) -> CacheBackend:
    try:
        return cache_from_url(url)
    except CacheError as err:
        raise ConfigError(f"SCREENPOP_CACHE_URL: {err}") from None
