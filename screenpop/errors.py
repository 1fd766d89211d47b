"""Every error the call flow raises on purpose, in one tree. Catch `ScreenpopError` to catch them all.

    ScreenpopError          the root; the message is short, says what failed and why, and holds no secret
    ├── ConfigError         the settings or the config file cannot be used (the CLI exits with code 2)
    ├── BusError            the bus cannot be used: a bad URL, not connected, the connection lost
    ├── CacheError          the cache cannot be used at all: a bad URL, not connected (never a server fault:
    │                       a cache that is down behaves as an empty cache)
    ├── StoreError          the administrators' state store cannot be opened, read or written
    └── CallStoreError      the call store cannot be used: a bad URL, not reachable, one call changed too
                            often while a change was applied (a webhook then answers 503)

Each is raised where it happens and importable from where it always was (`screenpop.config.ConfigError`,
`screenpop.bus.BusError`, `screenpop.cache.CacheError`, `screenpop.store.StoreError`,
`screenpop.callstore.CallStoreError`); this module is their
one definition. `screenpop.cli` catches the root and prints one line, no stack trace.

The rooms below the call flow may import only `screenpop.models`, so their errors have roots of their own,
beside this tree rather than under it. The call flow turns each into an answer, never into a crash:

    telephony.base.TelephonyError   an adapter refuses a request: a 4xx answer through the API
    ├── SignatureError              not signed, signed wrongly, or too old: 401 (generic) / 403 (Twilio)
    └── PayloadError                the body is not the protocol's: its `status`, 400 or 422
    telephony.cti.CtiError          a CTI session ended: logged, the adapter reconnects with backoff
    ├── ConnectionLost
    ├── LoginFailed
    └── ProtocolError
    connectors.base.ConnectorError  a source failed or answered nonsense: its section's status is `error`

A pydantic `ValidationError` becomes one of these (or a 4xx answer) through the one formatter,
`screenpop.models.format_validation_error`: `where: what` with the field's path, one line, bounded.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = ["BusError", "CacheError", "CallStoreError", "ConfigError", "ScreenpopError", "StoreError"]


class ScreenpopError(Exception):
    """Base of every error screenpop raises on purpose."""

    area: ClassVar[str] = ""
    """What failed, put before the message in a one-line report; empty when the message already says it."""


class ConfigError(ScreenpopError):
    """The configuration cannot be used. The message says where and why."""


class BusError(ScreenpopError):
    """The bus backend failed (connection lost, bad URL)."""

    area = "bus"


class CacheError(ScreenpopError):
    """The cache backend cannot be used (bad URL, not connected). Not raised for a server fault."""

    area = "cache"


class StoreError(ScreenpopError):
    """The store cannot be read or written."""

    area = "state store"


class CallStoreError(ScreenpopError):
    """The call store cannot be used (bad URL, not reachable, too much contention on one call)."""

    area = "call store"
