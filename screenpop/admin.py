"""Connector administration: the effective connectors (file + stored overrides), live reload, redaction.

A change is validated like the config file, stored with its audit entry, applied on this instance at once
(changed sources are rebuilt and started; unchanged ones keep their breaker, statistics and pool), and
announced on the bus so every other instance reloads from the store. Secrets are write-only: what the API
returns (and the audit trail) has every secret the kind declares replaced by `********`; sending `********`
back keeps the stored value only while the connector's URLs point at the same scheme, host and port
(connectors.secrets).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from pydantic import ValidationError

from connectors.base import ConnectorOptions
from connectors.secrets import MASK, SecretKept
from connectors.secrets import redact as redact_options
from connectors.secrets import restore as restore_options
from screenpop.config import Config, ConfigError, ConnectorConfig
from screenpop.lookup import Lookup
from screenpop.models import format_validation_error
from screenpop.plugins import PluginError, connector_kind, journal_kind
from screenpop.sources import Source, fingerprint
from screenpop.store import AdminStore
from screenpop.wiring import SourceFactory, journal_from

log = logging.getLogger("screenpop.admin")

REDACTED = MASK


def _options_model(kind: object, role: object = None) -> type[ConnectorOptions] | None:
    """The options model of a connector kind (of the journal kinds for role `journal`); None when the kind is
    unknown (then every value is masked)."""
    try:
        return journal_kind(str(kind)).Options if role == "journal" else connector_kind(str(kind)).Options
    except PluginError:
        return None


def redact(body: dict[str, Any]) -> dict[str, Any]:
    """A copy of a connector's config as an administrator may see it: every secret its kind declares in
    `options` replaced by `********` (connectors.secrets)."""
    out = copy.deepcopy(body)
    if isinstance(out.get("options"), dict):
        out["options"] = redact_options(_options_model(out.get("kind"), out.get("role")), out["options"])
    return out


def restore(new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """`new` with the stored secret back wherever the administrator sent `********` unchanged; SecretKept
    (a ValueError naming the field) when a secret would go to another destination or none is stored."""
    options = new.get("options")
    if not isinstance(options, dict) or not any(MASK in s for s in _strings(options)):
        return new
    same = old is not None and (old.get("kind"), old.get("role") or "section") == (new.get("kind"),
                                                                               new.get("role") or "section")
    stored = old.get("options") if old is not None and same else None
    model = _options_model(new.get("kind"), new.get("role"))
    return {**new, "options": restore_options(model, options, stored if isinstance(stored, dict) else None)}


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


class LookupSlot(Protocol):
    """Where the lookup in use lives (the call registry): a reload puts the new one there."""

    lookup: Lookup


class ConnectorAdmin:
    """The connectors of one instance, as the file and the store define them together.

    `config` is the file's; `store` holds the admin's overrides; `build` makes sources (with their cache and
    observer); `slot.lookup` is the lookup in use, replaced on reload; `announce` tells the other instances;
    `on_reload` hears the connectors in effect after every reload (the journal follows its connector).
    """

    def __init__(self, config: Config, store: AdminStore, build: SourceFactory, slot: LookupSlot,
                 announce: Callable[[], Awaitable[None]],
                 on_reload: Callable[[Config], Awaitable[None]] | None = None) -> None:
        self.config, self.store, self.build, self.slot = config, store, build, slot
        self.announce = announce
        self.on_reload = on_reload  # told the connectors in effect after each reload (the wrap-up journal)
        self._lock = asyncio.Lock()
        self._started: set[int] = set()
        self._retiring: list[Source] = []
        self.origin: dict[str, str] = {}

    def file_connectors(self) -> dict[str, ConnectorConfig]:
        return {c.name: c for c in self.config.connectors}

    async def effective(self) -> list[ConnectorConfig]:
        """File connectors with the stored overrides applied (file order first, then added ones)."""
        overrides = await self.store.overrides()
        merged: dict[str, ConnectorConfig] = dict(self.file_connectors())
        self.origin = {name: "file" for name in merged}
        for name, body in overrides.items():
            if body is None:
                merged.pop(name, None)
                self.origin.pop(name, None)
                continue
            try:
                merged[name] = ConnectorConfig.model_validate(body)
                self.origin[name] = "admin"
            except ValidationError as err:  # written by an older version: keep the file's, say why
                log.error("stored connector %s is invalid and ignored: %s", name, format_validation_error(err))
        return list(merged.values())

    def validate(self, connectors: list[ConnectorConfig]) -> Config:
        """The full config with these connectors; ConfigError names the problem."""
        try:
            kept = {name: getattr(self.config, name) for name in type(self.config).model_fields}
            return Config(**{**kept, "connectors": connectors})  # every other part of the file as it is
        except ValidationError as err:
            raise ConfigError(format_validation_error(err)) from None

    async def reload(self) -> None:
        """Rebuild the lookup from the file and the store; start new sources, retire replaced ones."""
        async with self._lock:
            config = self.validate(await self.effective())
            old = {s.name: s for s in self.slot.lookup.sources}
            lookup = self.build.lookup(config, "admin")
            kept: list[Source] = []
            for src in lookup.sources:
                previous = old.get(src.name)
                same = previous is not None and fingerprint(previous.config) == fingerprint(src.config)
                kept.append(previous if same and previous is not None else src)
            for src in kept:
                if id(src) not in self._started:
                    self._started.add(id(src))
                    try:
                        await src.connector.start()
                    except Exception as err:
                        log.error("connector %s did not start: %s", src.name, err)
            by_name = {s.name: s for s in kept}
            lookup.identity = by_name.get(lookup.identity.name) if lookup.identity else None
            lookup.fallback = by_name.get(lookup.fallback.name) if lookup.fallback else None
            lookup.sections = [by_name[s.name] for s in lookup.sections]
            retired = [s for s in old.values() if by_name.get(s.name) is not s]
            self.slot.lookup = lookup
            if retired:  # lookups in flight may still use them: close after the deadline
                self._retiring.extend(retired)
                asyncio.get_running_loop().call_later(lookup.deadline_s + 1, self._retire_later, retired)
            if self.on_reload is not None:
                await self.on_reload(config)

    def _retire_later(self, sources: list[Source]) -> None:
        asyncio.get_running_loop().create_task(self.retire(sources))

    async def retire(self, sources: list[Source] | None = None) -> None:
        """Close replaced connectors (all of them still waiting when `sources` is None, at shutdown)."""
        todo = list(self._retiring) if sources is None else [s for s in sources if s in self._retiring]
        for s in todo:
            self._retiring.remove(s)
            self._started.discard(id(s))
            try:
                await s.connector.close()
            except Exception:
                log.exception("closing connector %s failed", s.name)

    async def close(self) -> None:
        """At shutdown: close every connector, those in use and those still waiting to be retired."""
        await self.retire()
        for s in self.slot.lookup.sources:
            self._started.discard(id(s))
            try:
                await s.connector.close()
            except Exception:
                log.exception("closing connector %s failed", s.name)

    async def put(self, name: str, body: dict[str, Any], actor: str) -> tuple[ConnectorConfig, bool]:
        """Validate, store and apply one connector; returns it and whether it is new."""
        current = {c.name: c for c in await self.effective()}
        old = current.get(name)
        try:
            body = restore({**body, "name": name}, old.model_dump(mode="json") if old else None)
        except SecretKept as err:
            raise ConfigError(str(err)) from None
        try:
            cfg = ConnectorConfig.model_validate(body)
        except ValidationError as err:
            raise ConfigError(format_validation_error(err)) from None
        self._check_kind(cfg, f"connector {name}")
        self.validate([c for c in current.values() if c.name != name] + [cfg])
        stored = cfg.model_dump(mode="json")
        await self.store.put(name, stored, actor, {"config": redact(stored)})
        await self.reload()
        await self.announce()
        return cfg, old is None

    async def check_many(self, bodies: list[dict[str, Any]]) -> None:
        """Check connectors to be imported together (secrets sent as ******** keep the stored ones);
        ConfigError names the first problem, with the entry's position."""
        current = {c.name: c for c in await self.effective()}
        checked: dict[str, ConnectorConfig] = {}
        for i, body in enumerate(bodies):
            old = current.get(str(body.get("name")))
            try:
                cfg = ConnectorConfig.model_validate(restore(body, old.model_dump(mode="json") if old else None))
            except ValidationError as err:
                raise ConfigError(format_validation_error(err, prefix=f"connectors[{i}].")) from None
            except SecretKept as err:
                raise ConfigError(f"connectors[{i}] ({body.get('name')}): {err}") from None
            self._check_kind(cfg, f"connectors[{i}] ({cfg.name})")
            checked[cfg.name] = cfg
        self.validate([c for c in current.values() if c.name not in checked] + list(checked.values()))

    def _check_kind(self, cfg: ConnectorConfig, where: str) -> None:
        """The connector's kind and options, as at start (a journal through the journal kinds); ConfigError."""
        if cfg.role == "journal":
            journal_from(cfg, where, self.build.lanes)
        else:
            self.build.source(cfg, where)

    async def delete(self, name: str, actor: str) -> bool:
        """Remove a connector (file or admin); False when there is none of that name."""
        current = {c.name: c for c in await self.effective()}
        if name not in current:
            return False
        await self.store.put(name, None, actor, {})
        await self.reload()
        await self.announce()
        return True

    def public(self, cfg: ConnectorConfig) -> dict[str, Any]:
        """What the API shows of a connector: its config with secrets replaced, and where it comes from."""
        return {**redact(copy.deepcopy(cfg.model_dump(mode="json"))), "origin": self.origin.get(cfg.name, "file")}
