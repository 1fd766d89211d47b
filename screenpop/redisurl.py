"""Redis URLs: the one parser for every part of screenpop that talks to Redis (the bus, the cache).

    redis://[[user]:password@]host[:port][/db][?option=value&...]    plain TCP (port 6379, db 0 by default)
    rediss://...                                                      the same over TLS

`parse_redis_url(text)` checks the form at once and returns a `RedisURL`: where it points (`address`, for
messages; never the password), `scrub()` to hide the password in any text, and `client(**options)`, the
redis-py client it names. The query options (`?client_name=...`, `?ssl_cert_reqs=none`, ...) are redis-py's
own; as in `redis.asyncio.Redis.from_url`, an option written in the URL wins over the same keyword option.

A bad URL raises `RedisURLError` (a ValueError) saying what was expected and what came, with the password
replaced by `***`. Another form (a Sentinel `redis+sentinel://`) is added here: one more scheme in `SCHEMES`,
read by `parse_redis_url`, and one more way of building the client in `RedisURL.client`; callers do not change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, unquote, urlsplit

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["SCHEMES", "RedisURL", "RedisURLError", "parse_redis_url"]

SCHEMES = ("redis", "rediss")
DEFAULT_PORT = 6379
_HIDDEN = "***"


class RedisURLError(ValueError):
    """A Redis URL that cannot be used; the message says why and never contains the password."""


@dataclass(frozen=True, slots=True)
class RedisURL:
    """A checked Redis URL. `text` is the URL as given (it holds the password: never log it)."""

    scheme: str
    host: str
    port: int
    db: int
    username: str | None
    text: str = field(repr=False)
    password: str | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        """`host:port`, for log lines and error messages."""
        return f"{self.host}:{self.port}"

    @property
    def tls(self) -> bool:
        """True for `rediss://`."""
        return self.scheme == "rediss"

    def scrub(self, text: str) -> str:
        """`text` with the password (as written and as decoded) replaced by `***`."""
        for secret in {self.password, _raw_password(self.text)}:
            if secret:
                text = text.replace(secret, _HIDDEN)
        return text

    def redacted(self) -> str:
        """The URL with its password replaced by `***`."""
        return self.scrub(self.text)

    def client(self, **options: Any) -> Redis:
        """A redis-py asyncio client for this URL (not connected yet); `options` are `Redis` keyword options.

        Raises RedisURLError when redis-py refuses an option of the URL (an unknown or malformed one).
        """
        from redis.asyncio import Redis

        try:
            return Redis.from_url(self.text, **options)
        except (TypeError, ValueError) as exc:
            raise RedisURLError(f"invalid Redis URL {self.redacted()!r}: {self.scrub(str(exc))}") from None


def parse_redis_url(text: str) -> RedisURL:
    """Check `text` and return it as a RedisURL; raises RedisURLError naming what is wrong."""
    try:
        parts = urlsplit(text.strip())
    except ValueError as exc:
        raise RedisURLError(f"invalid Redis URL: {exc}") from None  # urlsplit's message never quotes the URL
    if parts.scheme not in SCHEMES:
        expected = " or ".join(f"{s}://" for s in SCHEMES)
        raise RedisURLError(f"expected a {expected} URL, got scheme {parts.scheme!r}")
    return RedisURL(scheme=parts.scheme, host=parts.hostname or "localhost", port=_port(parts, text),
                    db=_db(parts, text), username=unquote(parts.username) if parts.username else None,
                    text=text.strip(), password=unquote(parts.password) if parts.password else None)


def _port(parts: SplitResult, text: str) -> int:
    try:
        return parts.port or DEFAULT_PORT
    except ValueError:
        raise RedisURLError(f"invalid Redis URL {_redact(parts, text)!r}: "
                            "the port must be a number from 1 to 65535") from None


def _db(parts: SplitResult, text: str) -> int:
    path = parts.path.strip("/")
    if not path:
        return 0
    if not path.isdigit():
        raise RedisURLError(f"invalid Redis URL {_redact(parts, text)!r}: the path must be a database number "
                            f"(/0, /1, ...), got {parts.path!r}")
    return int(path)


def _raw_password(text: str) -> str | None:
    try:
        return urlsplit(text.strip()).password
    except ValueError:
        return None


def _redact(parts: SplitResult, text: str) -> str:
    raw = parts.password
    return text.replace(raw, _HIDDEN) if raw else text
