"""The plugin registry: connector kinds and CTI adapters, found through entry points only.

screenpop's own kinds and adapters are declared in its pyproject.toml exactly as a third-party package
declares its own (tests/plugins/screenpop-sample-plugin is a complete example):

    group                  entry point name    value
    screenpop.connectors   the kind            "module:Class", a subclass of connectors.base.Connector
    screenpop.cti          the URL scheme      "module:Class", a subclass of telephony.base.CtiAdapter
    screenpop.journals     the kind            "module:Class", a subclass of connectors.base.Journal

A plugin's module is imported only when its name is asked for. When two installed packages declare the
same name, screenpop's own wins (a plugin cannot shadow a built-in). Adding a telephony protocol is one
adapter module and one entry point line; adding a connector kind is one connector module and one line.

Errors:
    PluginError (a LookupError)   no plugin of that name (the message lists the known ones), or its module
                                  did not load, or it is not the seam's subclass.
"""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar, cast
from urllib.parse import urlsplit

from connectors.base import Connector, Journal
from telephony.base import CtiAdapter

log = logging.getLogger("screenpop.plugins")

OWN_DISTRIBUTION = "screenpop"
T = TypeVar("T")


class PluginError(LookupError):
    """No plugin of that name, or it failed to load. The message names the known ones and is safe to show."""


class Plugins(Generic[T]):
    """The plugins of one entry point group, each a subclass of `base`."""

    def __init__(self, group: str, base: type, what: str, plural: str) -> None:
        self.group, self.base, self.what, self.plural = group, base, what, plural

    def _entry_points(self) -> dict[str, EntryPoint]:
        found: dict[str, EntryPoint] = {}
        for ep in entry_points(group=self.group):
            own = ep.dist is not None and ep.dist.name == OWN_DISTRIBUTION
            if ep.name not in found or own:
                found[ep.name] = ep
        return found

    def names(self) -> list[str]:
        """Every declared name, sorted; nothing is imported."""
        return sorted(self._entry_points())

    def load(self, name: str) -> type[T]:
        """The class declared under `name` (its module imported now); PluginError when there is none."""
        known = self._entry_points()
        ep = known.get(name)
        if ep is None:
            listed = ", ".join(sorted(known)) or "none"
            raise PluginError(f"unknown {self.what} {name!r}; known {self.plural}: {listed}")
        return self._load(ep)

    def _load(self, ep: EntryPoint) -> type[T]:
        try:
            obj = ep.load()
        except Exception as err:
            problem = f"{type(err).__name__}: {err}"
            raise PluginError(f"{self.what} {ep.name!r} ({ep.value}) did not load: {problem}") from err
        if not (isinstance(obj, type) and issubclass(obj, self.base)):
            raise PluginError(f"{self.what} {ep.name!r} ({ep.value}) is not a subclass of {self.base.__qualname__}")
        return cast("type[T]", obj)

    def load_all(self) -> dict[str, type[T]]:
        """Every plugin that loads, by name; a broken one is logged and left out (it must not stop the service)."""
        loaded: dict[str, type[T]] = {}
        for name, ep in sorted(self._entry_points().items()):
            try:
                loaded[name] = self._load(ep)
            except PluginError as err:
                log.warning("%s", err)
        return loaded


CONNECTOR_KINDS: Plugins[Connector] = Plugins("screenpop.connectors", Connector, "connector kind", "kinds")
CTI_ADAPTERS: Plugins[CtiAdapter] = Plugins("screenpop.cti", CtiAdapter, "CTI URL scheme", "schemes")
JOURNAL_KINDS: Plugins[Journal] = Plugins("screenpop.journals", Journal, "journal kind", "journal kinds")


def journal_kind(name: str) -> type[Journal]:
    """The journal class of kind `name` (the `journal` role); PluginError naming the known kinds."""
    return JOURNAL_KINDS.load(name)


def connector_kind(name: str) -> type[Connector]:
    """The connector class of kind `name`; PluginError naming the known kinds when there is none."""
    return CONNECTOR_KINDS.load(name)


def connector_kinds() -> dict[str, type[Connector]]:
    """Every installed connector kind that loads, by name."""
    return CONNECTOR_KINDS.load_all()


def journal_kinds() -> dict[str, type[Journal]]:
    """Every installed journal kind (the `journal` role) that loads, by name."""
    return JOURNAL_KINDS.load_all()


def cti_adapter(url: str) -> CtiAdapter:
    """The CTI adapter for a connection URL, chosen by its scheme (ami://, esl://, or a plugin's).

    Raises PluginError for an unknown scheme and ValueError for a malformed URL; neither message quotes
    the URL, which holds a secret.
    """
    scheme = urlsplit(url.strip()).scheme.lower() if "://" in url else ""
    if not scheme:
        raise PluginError(f"a CTI URL needs a scheme; expected one of {_schemes()}")
    try:
        cls = CTI_ADAPTERS.load(scheme)
    except PluginError:
        raise PluginError(f"unsupported CTI URL scheme {scheme[:20]!r}; expected one of {_schemes()}") from None
    return cls.from_url(url)


def _schemes() -> str:
    return ", ".join(f"{s}://" for s in CTI_ADAPTERS.names()) or "none (no CTI adapter is installed)"
