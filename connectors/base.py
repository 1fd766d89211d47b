"""The connector seam.

A connector kind is a subclass of `Connector` with a `kind` name and an `Options` pydantic model. The
call flow builds one instance per configured connector, calls `start()` once, `fetch()` once per lookup
(many at a time), and `close()` at shutdown. Kinds are found by name through the entry point group
`screenpop.connectors` (`name = "module:Class"`), the built-in ones (http, sql, csv, offers) exactly like
a third-party package's (see screenpop/plugins.py; tests/plugins/screenpop-sample-plugin is a complete
example).

Two more capabilities go through the same seam:

    Connector.search    the identity source looked up by hand (name, company, another number); a kind
                        that cannot search keeps the default, which says so
    Journal             the `journal` role: a wrap-up written back to a back-office system, found through
                        the entry point group `screenpop.journals` (kinds `http`, `sql`: connectors/journal.py)

Errors:
    ConnectorError      the source failed or answered something unusable; `str(err)` is a short reason
                        shown to the agent (no secrets, no stack trace).
    asyncio.TimeoutError / CancelledError are left to the caller, which owns the timeouts.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from connectors.lanes import LaneRefused, Lanes
from screenpop.models import LookupQuery, View, WrapUp

# what plugins import (pinned by a test: tests/contract/test_public_api.py)
__all__ = ["CannotSearch", "Connector", "ConnectorError", "ConnectorOptions", "Journal", "Lanes"]


class ConnectorError(Exception):
    """The source failed or answered something unusable. The message is short and safe to show."""


class CannotSearch(ConnectorError):
    """This connector cannot search by hand (its kind cannot, or its options name no search): a matter of
    configuration, not a failure of the source."""


class ConnectorOptions(BaseModel):
    """Base of every kind's options: unknown keys are refused, so a typo is caught at start.

    Secrets are declared, never guessed from a key's name (connectors.secrets masks and restores them):
    every `SecretStr` field is secret; so are the userinfo and query values of the URL fields named in
    SECRET_URLS (but the parameters in PUBLIC_PARAMS or in the options' own `public_params`), and the values
    of the mappings named in SECRET_MAPS (but the names in PUBLIC_HEADERS or in the options' `public_headers`).
    A masked secret is kept on write-back only while the SECRET_URLS still point at the same destination.
    """

    model_config = ConfigDict(extra="forbid")

    SECRET_URLS: ClassVar[tuple[str, ...]] = ()
    SECRET_MAPS: ClassVar[tuple[str, ...]] = ()
    PUBLIC_PARAMS: ClassVar[tuple[str, ...]] = ()
    PUBLIC_HEADERS: ClassVar[tuple[str, ...]] = ()


class Connector(abc.ABC):
    """A source of data for one section of the card (or for the identity lookup)."""

    kind: ClassVar[str]
    Options: ClassVar[type[ConnectorOptions]] = ConnectorOptions
    view: ClassVar[View | None] = None
    """How this kind's section is shown unless its config says (`view:`); None: by the data's shape."""

    lanes: Lanes = Lanes()
    """Where this connector may reach (files, addresses); screenpop sets its settings' lanes in from_config."""

    def __init__(self, name: str, options: ConnectorOptions) -> None:
        self.name = name
        self.options = options

    @classmethod
    def from_config(cls, name: str, options: dict[str, Any], lanes: Lanes | None = None) -> Connector:
        """Build from raw options within `lanes`; raises pydantic.ValidationError naming the bad field, or
        ConnectorError when the options lead out of the lanes (a file outside the data folders)."""
        connector = cls(name, cls.Options.model_validate(options))
        if lanes is not None:
            connector.lanes = lanes
        try:
            connector.check_lanes()
        except LaneRefused as err:
            raise ConnectorError(str(err)) from None
        return connector

    def check_lanes(self) -> None:  # noqa: B027 - optional hook
        """Raise LaneRefused when the options name a file or host that `self.lanes` refuses. Called once by
        from_config; a kind that opens files or connects checks again each time it does (a link may change)."""

    @classmethod
    def default_view(cls, role: str) -> View | None:
        """How a section of this kind is shown when its config does not say: `customer` for the identity
        roles (their answer is the customer section), else the kind's `view`."""
        if role in ("identity", "identity_fallback"):
            return View(kind="customer")
        return cls.view

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open pools and sessions. Called once, in the running event loop, before any fetch.

        Must not fail because the source is down: a source that is down shows in `fetch` and `ping`.
        Raises ConnectorError only when the configuration cannot work at all.
        """

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release everything `start` opened. Called once at shutdown; must not raise."""

    @abc.abstractmethod
    async def fetch(self, query: LookupQuery) -> dict[str, Any] | list[Any] | None:
        """Fetch the data for one lookup.

        Returns a JSON-compatible dict or list, or None (or an empty list) when the source has nothing
        for this query. For the identity role, it returns the matching customer records: a dict or a list
        of dicts, each with at least `id` and `name`. Raises ConnectorError with a short reason when the
        source fails. Must be safe to call concurrently. Timeouts are applied by the caller (it cancels).
        """

    @abc.abstractmethod
    async def ping(self) -> None:
        """Check that the source is reachable. Returns None when it is, raises ConnectorError if not."""

    async def search(self, text: str, limit: int) -> list[dict[str, Any]]:
        """Customers whose name, company or a number matches `text` (what an agent typed: at least two
        characters, already stripped), for the identity role: at most `limit` records shaped as `fetch`
        returns them (each with at least `id` and `name`), best first; [] when none matches. Raises
        ConnectorError with a short reason when the source fails, CannotSearch when this kind (or this
        connector's options) cannot search (the default). Must be safe to call concurrently; the caller
        applies the timeout."""
        raise CannotSearch(f"the {self.kind} connector {self.name!r} cannot search")


class Journal(abc.ABC):
    """A back-office system that takes wrap-ups (the `journal` role): one per configured connector."""

    kind: ClassVar[str]
    Options: ClassVar[type[ConnectorOptions]] = ConnectorOptions

    def __init__(self, name: str, options: ConnectorOptions) -> None:
        self.name = name
        self.options = options
        self.lanes = Lanes()  # where it may write: the same lanes as the section connectors (connectors.lanes)

    @classmethod
    def from_config(cls, name: str, options: dict[str, Any], lanes: Lanes | None = None) -> Journal:
        """Build from raw options within `lanes`; raises pydantic.ValidationError naming the bad field, or
        ConnectorError when the options lead out of the lanes (a file outside the data folders, a refused host)."""
        journal = cls(name, cls.Options.model_validate(options))
        if lanes is not None:
            journal.lanes = lanes
        try:
            journal.check_lanes()
        except LaneRefused as err:
            raise ConnectorError(str(err)) from None
        return journal

    def check_lanes(self) -> None:  # noqa: B027 - optional hook
        """Raise LaneRefused when the options name a file or host that `self.lanes` refuses; a kind that
        connects checks again each time it does."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open pools and sessions, once, before the first write. Must not fail because the target is down."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release everything `start` opened. Called once at shutdown; must not raise."""

    @abc.abstractmethod
    async def write(self, entry: WrapUp) -> None:
        """Deliver one wrap-up to the target; return only once the target has it.

        The same entry may be written again (after a timeout, a crash, a restart: screenpop delivers at
        least once), always with the same `entry.key`: the kind must pass the key on (HTTP: the
        `Idempotency-Key` header) or use it itself (SQL: a unique column), so that the target keeps exactly
        one entry per key. A target that answers "already have it" counts as delivered. Raises
        ConnectorError with a short reason (shown to the agent, no secrets) when the target failed or
        refused; screenpop then retries with back-off. Must be safe to call concurrently.
        """

    @abc.abstractmethod
    async def ping(self) -> None:
        """Check that the target is reachable. Returns None when it is, raises ConnectorError if not."""
