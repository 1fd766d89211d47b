"""From configuration to parts: sources and the lookup over them, and the CTI adapters.

    SourceFactory   builds each configured connector as a Source, with its cache and observer set at
                    construction, and the Lookup over a config's enabled connectors
    build_lookup    the same without cache or observer (check-config, tests)
    build_journal   the enabled `journal` connector (its kind from the `screenpop.journals` entry points)
    build_cti       the CTI adapters named by the settings, each chosen by its URL's scheme

A bad kind, option or URL raises ConfigError naming where it is (never quoting a secret).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import ValidationError

from connectors.base import Connector, ConnectorError, Journal, Lanes
from screenpop.cache import SectionCache
from screenpop.config import Config, ConfigError, ConnectorConfig
from screenpop.lookup import Lookup
from screenpop.models import Column, View, format_validation_error
from screenpop.plugins import PluginError, connector_kind, cti_adapter, journal_kind
from screenpop.settings import Settings
from screenpop.sources import Observer, Source
from telephony.base import CtiAdapter


@dataclass(frozen=True)
class SourceFactory:
    """Builds sources over one section cache, each reporting its settled sections to one observer."""

    cache: SectionCache | None = None
    observer: Observer | None = None
    history: Connector | None = None  # the built-in `history` section (screenpop.journal), after the others
    lanes: Lanes = field(default_factory=Lanes)

    def source(self, c: ConnectorConfig, where: str) -> Source:
        """One connector instance from its config; a bad kind or option raises ConfigError naming `where`."""
        try:
            kind = connector_kind(c.kind)
        except PluginError as err:
            raise ConfigError(f"{where}.kind: {err}") from None
        try:
            connector = kind.from_config(c.name, c.options, self.lanes)
        except ValidationError as err:
            raise ConfigError(f"{where}: {format_validation_error(err, prefix='options.')}") from None
        except ConnectorError as err:  # the options lead out of the lanes
            raise ConfigError(f"{where}: options: {err}") from None
        return Source(config=c, connector=connector, cache=self.cache, observer=self.observer)

    def lookup(self, config: Config, source_name: str = "<config>") -> Lookup:
        """The Lookup over every enabled connector of `config`."""
        identity: Source | None = None
        fallback: Source | None = None
        sections: list[Source] = []
        for i, c in enumerate(config.connectors):
            if not c.enabled or c.role == "journal":  # a journal is built by screenpop.journal
                continue
            source = self.source(c, f"{source_name}: connectors[{i}] ({c.name})")
            if c.role == "identity":
                identity = source
            elif c.role == "identity_fallback":
                fallback = source
            elif c.role == "section":
                sections.append(source)
        if self.history is not None and config.wrapup.history > 0 and all(s.name != "history" for s in sections):
            sections.append(Source(config=HISTORY, connector=self.history, cache=None, observer=self.observer))
        lc = config.lookup
        return Lookup(identity, sections, lc.deadline_ms / 1000, fallback=fallback, suffix_digits=lc.suffix_digits,
                      rank_called_field=lc.rank_called_field, rank_activity_field=lc.rank_activity_field)


HISTORY = ConnectorConfig(
    name="history", kind="history", role="section", title="History", timeout_ms=1000,
    view=View(kind="table", columns=(Column(key="date", format="date"), Column(key="agent"),
                                     Column(key="disposition"), Column(key="notes"),
                                     Column(key="follow_up", label="Follow-up", format="date"))))
"""The built-in section of a customer's last calls (`wrapup.history` of them; a connector section named
`history` takes its place)."""


def build_journal(config: Config, source_name: str = "<config>", lanes: Lanes | None = None) -> Journal | None:
    """The enabled `journal` connector of `config` within `lanes`, or None; a bad kind or option, or one
    that leads out of the lanes, raises ConfigError."""
    for i, c in enumerate(config.connectors):
        if c.role == "journal" and c.enabled:
            return journal_from(c, f"{source_name}: connectors[{i}] ({c.name})", lanes)
    return None


def journal_from(c: ConnectorConfig, where: str, lanes: Lanes | None = None) -> Journal:
    """The journal connector of one connector's config (role `journal`); ConfigError naming `where`."""
    try:
        kind = journal_kind(c.kind)
    except PluginError as err:
        raise ConfigError(f"{where}.kind: {err}") from None
    try:
        return kind.from_config(c.name, c.options, lanes)
    except ValidationError as err:
        raise ConfigError(f"{where}: {format_validation_error(err, prefix='options.')}") from None
    except ConnectorError as err:  # the options lead out of the lanes
        raise ConfigError(f"{where}: options: {err}") from None


def lanes_from_settings(settings: Settings) -> Lanes:
    """Where connectors may reach: SCREENPOP_DATA_DIRS (default: the config file's folder, else the current
    one), never the state database, the config file or screenpop's own code; SCREENPOP_CONNECTOR_ALLOW."""
    if settings.data_dirs:
        dirs = tuple(Path(d) for d in settings.data_dirs)
    else:
        dirs = (Path(settings.config).resolve().parent if settings.config else Path.cwd(),)
    forbidden = [Path(p).parent for p in _own_packages()]
    if settings.config:
        forbidden.append(Path(settings.config))
    state = settings.state_url or ""
    if state.startswith("sqlite"):
        forbidden.append(Path(urlsplit(state).path[1:]))  # sqlite:///relative.db, sqlite:////absolute.db
    return Lanes(data_dirs=dirs, forbidden=tuple(forbidden), allow=tuple(settings.connector_allow))


def _own_packages() -> list[str]:
    import connectors
    import screenpop
    import telephony
    import web

    return [m.__file__ for m in (screenpop, connectors, telephony, web) if m.__file__]


def build_lookup(config: Config, source_name: str = "<config>") -> Lookup:
    """The Lookup over every enabled connector of `config`, uncached and unobserved."""
    return SourceFactory().lookup(config, source_name)


def build_sources(config: Config, source_name: str = "<config>") -> tuple[Source | None, list[Source]]:
    """Instantiate every enabled connector (identity, sections); a bad kind or option raises ConfigError."""
    lookup = build_lookup(config, source_name)
    return lookup.identity, lookup.sections


def build_cti(settings: Settings) -> list[CtiAdapter]:
    """One adapter per CTI connection URL of the settings, chosen by scheme; its module imported only then."""
    adapters: list[CtiAdapter] = []
    for where, url in settings.cti_connections():
        try:
            adapters.append(cti_adapter(url.get_secret_value()))
        except (PluginError, ValueError) as err:  # neither quotes the URL
            raise ConfigError(f"{where}: {err}") from None
    return adapters
