"""The `journal` role's built-in kinds: a wrap-up written back over HTTP, or by one SQL INSERT.

    http    url      "https://crm.example/api/customers/{customer_id}/calls"   (placeholders: see below,
                     each percent-encoded; only in the path, query or fragment)
            method   POST (default) | PUT | PATCH
            body     a JSON template: every string in it may hold placeholders; a string that is exactly one
                     placeholder ("{follow_up}") becomes the value itself (null when there is none).
                     Default: the whole entry as JSON.
            headers, auth, verify_tls, ca_file   as the `http` connector kind (docs/connectors.md)
            Every request carries `Idempotency-Key: <entry key>`; 2xx and 409 (the target has the key
            already) count as delivered, anything else is an error and the entry is retried.
    sql     url      as the `sql` connector kind (postgresql, mysql / mariadb, sqlite)
            insert   INSERT INTO call_log (idempotency_key, customer_id, notes, ...)
                     VALUES (:key, :customer_id, :notes, ...)        one INSERT statement, nothing else
            Give the table a UNIQUE constraint on the column that takes :key: a second delivery of the same
            entry then violates it, which counts as delivered (exactly one row per call and agent).
            This INSERT is the only write any SQL connector of screenpop may do.

Placeholders (all strings, "" when unknown): key call_id agent agent_name customer_id customer_name phone
disposition notes follow_up saved_at. In the SQL INSERT, :follow_up is a date (NULL when none) and :saved_at
a timestamp with time zone.
"""

from __future__ import annotations

import contextlib
import re
import string
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlsplit

import aiohttp
from pydantic import ConfigDict, Field, field_validator
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from yarl import URL

from connectors.base import ConnectorError, ConnectorOptions, Journal
from connectors.http_auth import CONTROL_CHARS, HEADER_NAME, Auth
from connectors.http_options import HttpClientOptions, HttpOptions
from connectors.http_transport import SAFETY_TIMEOUT_S, LaneResolver, check_literal, drain, http_errors, tls_setting
from connectors.sql import SqlOptions
from connectors.sql_rules import check_parameters, normalize_url, one_statement, sql_errors
from screenpop.models import WrapUp

FIELDS = tuple(WrapUp.model_fields)  # the same names as WrapUp.template_values()
IDEMPOTENCY_HEADER = "Idempotency-Key"
_ONE = re.compile(r"^\{([a-z_]+)\}$")


def _fields(template: str) -> list[tuple[str, str | None]]:
    """(literal, placeholder) pairs; ValueError for an unknown placeholder or unbalanced braces."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        raise ValueError("unbalanced braces; write {{ or }} for a literal brace") from None
    out: list[tuple[str, str | None]] = []
    for literal, field, spec, conversion in parsed:
        if field is not None and (field not in FIELDS or spec or conversion):
            raise ValueError(f"unknown placeholder {{{field}}}; use " + ", ".join(f"{{{f}}}" for f in FIELDS))
        out.append((literal, field))
    return out


def render_text(template: str, values: dict[str, str], encode: Any = str) -> str:
    """A template with its placeholders filled (each value passed through `encode`)."""
    return "".join(lit + (encode(values[f]) if f else "") for lit, f in _fields(template))


def render_body(template: Any, entry: WrapUp) -> Any:
    """The JSON body: strings filled; a string that is one placeholder becomes the typed value."""
    if isinstance(template, dict):
        return {str(k): render_body(v, entry) for k, v in template.items()}
    if isinstance(template, list):
        return [render_body(v, entry) for v in template]
    if isinstance(template, str):
        one = _ONE.match(template)
        if one and one.group(1) in FIELDS:
            value = entry.model_dump(mode="json").get(one.group(1))
            return value if value is not None or one.group(1) in ("follow_up", "customer_id") else ""
        return render_text(template, entry.template_values())
    return template


def _check_body(value: Any) -> None:
    if isinstance(value, dict):
        for v in value.values():
            _check_body(v)
    elif isinstance(value, list):
        for v in value:
            _check_body(v)
    elif isinstance(value, str):
        _fields(value)


def check_url(template: str) -> tuple[str, int]:
    """Check a URL template; (host, port). Placeholders may not be in the scheme or the host."""
    parts = _fields(template)
    head = parts[0][0] if parts else ""
    if any(f for _, f in parts) and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#{]*[/?#]", head):
        raise ValueError("placeholders may only appear in the path, query or fragment")
    sample = urlsplit(render_text(template, dict.fromkeys(FIELDS, "x")))
    try:
        port = sample.port
    except ValueError:
        raise ValueError("invalid port") from None
    if sample.scheme.lower() not in ("http", "https") or not sample.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return sample.hostname, port or (443 if sample.scheme.lower() == "https" else 80)


class HttpJournalOptions(HttpClientOptions):
    """Options of the `http` journal (see the module docstring). Secrets as for the http kind: the URL's
    userinfo and query values, every header value but the public ones, `auth` (connectors.secrets)."""

    SECRET_URLS: ClassVar[tuple[str, ...]] = ("url",)
    SECRET_MAPS: ClassVar[tuple[str, ...]] = ("headers",)
    PUBLIC_HEADERS: ClassVar[tuple[str, ...]] = HttpOptions.PUBLIC_HEADERS

    url: str
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    body: dict[str, Any] | list[Any] | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    verify_tls: bool = True
    ca_file: str | None = None
    auth: Auth | None = None

    @field_validator("url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        check_url(v)
        return v

    @field_validator("body")
    @classmethod
    def _check_body(cls, v: Any) -> Any:
        _check_body(v)
        return v

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not HEADER_NAME.match(name) or name.lower() == IDEMPOTENCY_HEADER.lower():
                raise ValueError(f"invalid header name {name!r} (Idempotency-Key is always sent)")
            if CONTROL_CHARS.search(value):
                raise ValueError(f"header {name} holds a control character")
            _fields(value)
        return v


class HttpJournal(Journal):
    """Writes each wrap-up as one JSON request, with the entry's key as `Idempotency-Key`."""

    kind: ClassVar[str] = "http"
    Options: ClassVar[type[ConnectorOptions]] = HttpJournalOptions
    options: HttpJournalOptions

    def __init__(self, name: str, options: ConnectorOptions) -> None:
        super().__init__(name, options)
        host, port = check_url(self.options.url)
        self._where = f"{host}:{port}"
        self._session: aiohttp.ClientSession | None = None

    def check_lanes(self) -> None:
        """The target's host as configured when it is an address (a name is checked on every connection, by
        the resolver, as for the http section kind)."""
        check_literal(self.lanes, urlsplit(self.options.url.replace("{", "").replace("}", "")).hostname or "")

    async def start(self) -> None:
        """Open the session (connections are made on first use)."""
        if self._session is not None:
            return
        tls = await tls_setting(self.options.verify_tls, self.options.ca_file)
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=20, ssl=tls,
                                                                           resolver=LaneResolver(self.lanes)),
                                              timeout=aiohttp.ClientTimeout(total=SAFETY_TIMEOUT_S),
                                              cookie_jar=aiohttp.DummyCookieJar())

    async def close(self) -> None:
        """Close the session."""
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(Exception):
                await session.close()

    async def write(self, entry: WrapUp) -> None:
        """One request; 2xx or 409 is delivered, anything else a ConnectorError("HTTP <code>")."""
        if self._session is None:
            raise ConnectorError("journal is not started")
        opts = self.options
        values = entry.template_values()
        url = render_text(opts.url, values, lambda v: quote(v, safe=""))
        headers = {n: CONTROL_CHARS.sub("", render_text(v, values)) for n, v in opts.headers.items()}
        if opts.auth is not None:
            headers.update(opts.auth.headers())
        headers[IDEMPOTENCY_HEADER] = entry.key
        body = entry.model_dump(mode="json") if opts.body is None else render_body(opts.body, entry)
        with http_errors(self._where):
            check_literal(self.lanes, URL(url).host or "")  # an IP literal is not resolved: checked here
            async with self._session.request(opts.method, url, headers=headers, json=body,
                                             allow_redirects=False) as resp:
                await drain(resp)
                if not (200 <= resp.status < 300 or resp.status == 409):
                    raise ConnectorError(f"HTTP {resp.status}")

    async def ping(self) -> None:
        """Open a TCP connection to the target's host."""
        import asyncio

        host, _, port = self._where.rpartition(":")
        with http_errors(self._where):
            check_literal(self.lanes, host)
            address = await LaneResolver(self.lanes).resolve(host, int(port))
            _, writer = await asyncio.open_connection(address[0]["host"], int(port))
            writer.close()


def check_insert(statement: str) -> str:
    """The statement without a trailing ";"; ValueError unless it is one INSERT with known parameters."""
    statement, code = one_statement(statement, r"\s*insert\s+into\b",
                                    "the statement must be one INSERT INTO ... statement")
    if re.search(r"\b(select|returning|update|delete|on\s+duplicate)\b", code, re.IGNORECASE):
        raise ValueError("only INSERT ... VALUES (...) is allowed: no SELECT, RETURNING or upsert "
                         "(ON CONFLICT DO NOTHING is fine)")
    check_parameters(statement, FIELDS)
    return statement


class SqlJournalOptions(ConnectorOptions):
    """Options of the `sql` journal (see the module docstring). The URL's password and query values are
    secret, as for the sql kind."""

    model_config = ConfigDict(hide_input_in_errors=True)
    SECRET_URLS: ClassVar[tuple[str, ...]] = ("url",)
    PUBLIC_PARAMS: ClassVar[tuple[str, ...]] = SqlOptions.PUBLIC_PARAMS

    url: str
    insert: str
    pool_size: int = Field(default=2, ge=1, le=50)

    @field_validator("url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        return normalize_url(v)

    @field_validator("insert")
    @classmethod
    def _check_insert(cls, v: str) -> str:
        return check_insert(v)


class SqlJournal(Journal):
    """Runs the one configured INSERT per wrap-up; a duplicate key is a delivery already done."""

    kind: ClassVar[str] = "sql"
    Options: ClassVar[type[ConnectorOptions]] = SqlJournalOptions
    options: SqlJournalOptions

    def __init__(self, name: str, options: ConnectorOptions) -> None:
        super().__init__(name, options)
        self._statement = text(self.options.insert)
        self._params = [p for p in FIELDS if p in self._statement.compile().params]
        url = make_url(self.options.url)
        self._where = "the database file" if url.get_backend_name() == "sqlite" else f"{url.host or 'localhost'}"
        self._engine: AsyncEngine | None = None

    def check_lanes(self) -> None:
        """A SQLite file inside the data folders and none of screenpop's own; a database host allowed."""
        url = make_url(self.options.url)
        if url.get_backend_name() == "sqlite":
            if url.database and url.database != ":memory:":
                self.lanes.check_file(url.database)
            return
        self.lanes.check_host_name(url.host or "localhost")

    async def start(self) -> None:
        """Create the engine (connections are made on first use)."""
        if self._engine is None:
            try:
                self._engine = create_async_engine(self.options.url, pool_pre_ping=True)
            except (ImportError, SQLAlchemyError, TypeError, ValueError) as err:
                raise ConnectorError(f"cannot use this database URL ({type(err).__name__})") from err

    async def close(self) -> None:
        """Dispose of the engine."""
        engine, self._engine = self._engine, None
        if engine is not None:
            with contextlib.suppress(Exception):
                await engine.dispose()

    async def write(self, entry: WrapUp) -> None:
        """Run the INSERT in its own transaction; a unique violation means the row is there already."""
        if self._engine is None:
            raise ConnectorError("journal is not started")
        values = entry.template_values()
        typed: dict[str, Any] = {**values, "follow_up": entry.follow_up, "saved_at": entry.saved_at}
        params = {p: typed[p] for p in self._params}  # a date and a timestamp as such (asyncpg wants them typed)
        try:
            with sql_errors(self._where):
                async with self._engine.begin() as conn:
                    await conn.execute(self._statement, params)
        except ConnectorError as err:
            if isinstance(err.__cause__, IntegrityError) and _duplicate(err.__cause__):
                return
            raise

    async def ping(self) -> None:
        """Run `SELECT 1`."""
        if self._engine is None:
            raise ConnectorError("journal is not started")
        with sql_errors(self._where):
            async with self._engine.connect() as conn:
                await conn.execute(text("SELECT 1"))


def _duplicate(err: IntegrityError) -> bool:
    """True when the integrity error is a unique violation (the key is there already)."""
    words = str(err.orig).lower()
    return any(w in words for w in ("unique", "duplicate"))
