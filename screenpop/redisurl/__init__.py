"""Redis URLs: the one parser for every part of screenpop that talks to Redis (the bus, the cache, the stores).

    redis://[[user]:password@]host[:port][/db][?option=value&...]    plain TCP (port 6379, db 0 by default)
    rediss://...                                                      the same over TLS
    redis+sentinel://[[user]:password@]host1[:port],host2[:port],.../master-name[/db][?option=value&...]
    rediss+sentinel://...                                             the same over TLS

The Sentinel form names the Sentinels (port 26379 by default) and the name the primary is monitored under
(`sentinel monitor <master-name> ...`); the client asks the Sentinels where the primary is and follows it
through failovers (see `screenpop.redisurl.sentinel`). Its user and password are the data nodes'; the
Sentinels' own, when they have `requirepass` or ACL users, are the options `sentinel_username` and
`sentinel_password`. `rediss+sentinel://` speaks TLS to the data nodes and to the Sentinels alike, with the
same `ssl_*` options.

`parse_redis_url(text)` checks the form at once and returns a `RedisURL`: where it points (`address`, for
messages; never the password), `scrub()` to hide the passwords in any text, and `client(**options)`, the
redis-py client it names. The query options (`?client_name=...`, `?ssl_cert_reqs=none`, `?ssl_ca_certs=...`)
are redis-py's own; as in `redis.asyncio.Redis.from_url`, an option written in the URL wins over the same
keyword option.

A bad URL raises `RedisURLError` (a ValueError) saying what was expected and what came, with the passwords
replaced by `***`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["SCHEMES", "SENTINEL_SCHEMES", "RedisURL", "RedisURLError", "close_quietly", "parse_redis_url"]

log = logging.getLogger("screenpop.redis")

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
SCHEMES = ("redis", "rediss", *SENTINEL_SCHEMES)
DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379
SECRET_OPTIONS = ("password", "sentinel_password")  # query options hidden by scrub()
_HIDDEN = "***"


class RedisURLError(ValueError):
    """A Redis URL that cannot be used; the message says why and never contains a password."""


@dataclass(frozen=True, slots=True)
class RedisURL:
    """A checked Redis URL. `text` is the URL as given (it holds the password: never log it).

    For a Sentinel URL, `sentinels` lists the Sentinels' (host, port), `master` is the monitored name, and
    `host`/`port` are the first Sentinel's."""

    scheme: str
    host: str
    port: int
    db: int
    username: str | None
    text: str = field(repr=False)
    password: str | None = field(default=None, repr=False)
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str | None = None

    @property
    def address(self) -> str:
        """Where it points, for log lines and error messages: `host:port`, or `master <name> via h1:p1,h2:p2`."""
        if self.sentinel:
            return f"master {self.master!r} via Sentinels {','.join(f'{h}:{p}' for h, p in self.sentinels)}"
        return f"{self.host}:{self.port}"

    @property
    def tls(self) -> bool:
        """True for `rediss://` and `rediss+sentinel://`."""
        return self.scheme.startswith("rediss")

    @property
    def sentinel(self) -> bool:
        """True for the Sentinel forms."""
        return self.scheme in SENTINEL_SCHEMES

    def scrub(self, text: str) -> str:
        """`text` with every password of the URL (as written and as decoded) replaced by `***`."""
        for secret in sorted(_secrets(self.text), key=len, reverse=True):
            text = text.replace(secret, _HIDDEN)
        return text

    def redacted(self) -> str:
        """The URL with its passwords replaced by `***`."""
        return self.scrub(self.text)

    def client(self, **options: Any) -> Redis:
        """A redis-py asyncio client for this URL (not connected yet); `options` are `Redis` keyword options.

        For a Sentinel URL, the client reaches the current primary and follows it through failovers; closing
        it (`aclose()`) also closes its Sentinel connections. Raises RedisURLError when redis-py refuses an
        option of the URL (an unknown or malformed one).
        """
        from screenpop.redisurl.packing import pack_in_c

        try:
            if self.sentinel:
                from screenpop.redisurl.sentinel import sentinel_client

                return pack_in_c(sentinel_client(self, options))
            from redis.asyncio import Redis

            return pack_in_c(Redis.from_url(self.text, **options))
        except (TypeError, ValueError) as exc:
            raise RedisURLError(f"invalid Redis URL {self.redacted()!r}: {self.scrub(str(exc))}") from None


def parse_redis_url(text: str) -> RedisURL:
    """Check `text` and return it as a RedisURL; raises RedisURLError naming what is wrong."""
    text = text.strip()
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise RedisURLError(f"invalid Redis URL: {exc}") from None  # urlsplit's message never quotes the URL
    if parts.scheme not in SCHEMES:
        expected = ", ".join(f"{s}://" for s in SCHEMES)
        raise RedisURLError(f"expected a URL of scheme {expected}; got scheme {parts.scheme!r}")
    if parts.scheme in SENTINEL_SCHEMES:
        return _parse_sentinel(parts, text)
    return RedisURL(scheme=parts.scheme, host=parts.hostname or "localhost", port=_port(parts, text, DEFAULT_PORT),
                    db=_db(parts.path, text), username=unquote(parts.username) if parts.username else None,
                    text=text, password=unquote(parts.password) if parts.password else None)


async def close_quietly(client: Redis | None, what: str) -> None:
    """Close a client built here (None: nothing to close); a failure is logged, never raised: a close runs
    at shutdown or after another error, and must not hide it. `what` names the client in the log line."""
    if client is None:
        return
    try:
        await client.aclose()
    except Exception as exc:  # the message may name the server, never the password (not in redis-py's errors)
        log.warning("closing the Redis client of %s failed: %s", what, type(exc).__name__)


def _parse_sentinel(parts: SplitResult, text: str) -> RedisURL:
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    sentinels = tuple(_sentinel_address(h, text) for h in hosts.split(","))
    name, _, db = parts.path.lstrip("/").partition("/")
    if not name:
        raise RedisURLError(f"invalid Redis URL {_redact(text)!r}: a Sentinel URL names the master after the "
                            "Sentinels: redis+sentinel://host1:26379,host2:26379/<master-name>[/db]")
    if "/" in db.rstrip("/"):
        raise RedisURLError(f"invalid Redis URL {_redact(text)!r}: expected /<master-name>[/db], got {parts.path!r}")
    return RedisURL(scheme=parts.scheme, host=sentinels[0][0], port=sentinels[0][1], db=_db(db, text),
                    username=unquote(user) or None, text=text, password=unquote(password) or None,
                    sentinels=sentinels, master=unquote(name))


def _sentinel_address(host: str, text: str) -> tuple[str, int]:
    if not host:
        raise RedisURLError(f"invalid Redis URL {_redact(text)!r}: expected host[:port] for each Sentinel, "
                            "separated by commas")
    try:
        parts = urlsplit(f"//{host}")
    except ValueError as exc:
        raise RedisURLError(f"invalid Redis URL {_redact(text)!r}: Sentinel {host!r}: {exc}") from None
    return parts.hostname or "localhost", _port(parts, text, DEFAULT_SENTINEL_PORT)


def _port(parts: SplitResult, text: str, default: int) -> int:
    try:
        return parts.port or default
    except ValueError:
        raise RedisURLError(f"invalid Redis URL {_redact(text)!r}: "
                            "the port must be a number from 1 to 65535") from None


def _db(path: str, text: str) -> int:
    path = path.strip("/")
    if not path:
        return 0
    if not path.isdigit():
        raise RedisURLError(f"invalid Redis URL {_redact(text)!r}: expected a database number "
                            f"(/0, /1, ...), got {path!r}")
    return int(path)


def _secrets(text: str) -> set[str]:
    """Every password in `text`, as written and as decoded: the userinfo's and the SECRET_OPTIONS'."""
    found: set[str] = set()
    head, _, query = text.partition("?")
    userinfo = head.partition("://")[2].partition("/")[0].rpartition("@")[0]
    if ":" in userinfo:
        raw = userinfo.partition(":")[2]
        found |= {raw, unquote(raw)}
    for pair in query.split("&"):
        key, _, raw = pair.partition("=")
        if unquote(key) in SECRET_OPTIONS:
            found |= {raw, *(v for _, v in parse_qsl(pair))}
    return {s for s in found if s}


def _redact(text: str) -> str:
    for secret in sorted(_secrets(text), key=len, reverse=True):
        text = text.replace(secret, _HIDDEN)
    return text
