"""The `http` connector kind: one JSON request per lookup, over a kept-alive aiohttp session.

    url      "https://crm.example/api/customers?phone={phone}"   placeholders: {phone} {customer_id}
             {raw} {called}, each percent-encoded (nothing is safe: "+" becomes "%2B", "/" "%2F")
    items    "data.customers"       JMESPath: the list inside the answer (optional)
    fields   {"balance": "account.balance", "phone": "phones[0]"}   output key -> JMESPath expression,
             applied to the object or to each item of the list (optional; nothing found gives None)
    auth     {"type": "bearer", "token": ...} | {"type": "basic", "username": ..., "password": ...}
             | {"type": "api_key", "header": "X-Api-Key", "value": ...}
             | {"type": "api_key", "query": "api_key", "value": ...}       (optional)
    verify_tls / ca_file   TLS certificates are verified (default); ca_file trusts a private CA (PEM)

search_url  "https://crm.example/api/customers/search?q={text}"   for an identity connector: the agent's
             search by hand; {text} (percent-encoded) is the only placeholder; the answer is shaped by `items`
             and `fields` like a lookup's and must be a list of records (or one)

With `auth`, redirects are not followed (the secret would go wherever the redirect points): a 3xx answer
is ConnectorError("HTTP 302 ..."); point `url` at the final address.

Placeholders may appear in the path, the query and the fragment, never in the scheme or the host.
Header values may hold placeholders too; there they are inserted as they are, minus control characters.
The mapping is JMESPath (see connectors.mapping). Secrets of `auth` are pydantic SecretStr: they are not
in the options' repr, in validation errors or in any ConnectorError.

Outcomes: 2xx with JSON -> the (mapped) data, `null` / `[]` / 204 -> None, 404 -> None or
ConnectorError("HTTP 404") as `not_found` says, other >= 300 -> ConnectorError("HTTP <code>"), a body over
`max_bytes` -> ConnectorError, no connection -> ConnectorError("cannot connect to <host>:<port>").
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import re
import socket
import ssl
import string
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from pydantic import ConfigDict, Field, ValidationInfo, field_validator
from yarl import URL

from connectors.base import Connector, ConnectorError, ConnectorOptions
from connectors.http_auth import CONTROL_CHARS, HEADER_NAME, ApiKeyAuth, Auth, BasicAuth, BearerAuth
from connectors.lanes import LaneRefused, Lanes
from connectors.mapping import Expression, Mapping
from screenpop.models import LookupQuery

PLACEHOLDERS = tuple(LookupQuery(phone="").template_values())  # phone, raw, called, customer_id
SAFETY_TIMEOUT_S = 60.0  # the caller cancels much earlier; this only stops a request living forever
_URL_KEEP = "!#$%&'()*+,/:;=?@[]~"  # literal URL text: keep reserved characters and existing %-escapes
_NETLOC_DONE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*[/?#]")
_CHUNK = 65536
_REDIRECT_NOTE = " (redirects are not followed when auth is set)"
_DRAIN_MAX = 65536

Parts = list[tuple[str, str | None]]


def _parse(template: str) -> Parts:
    """Split a template into (literal, placeholder) pairs; raises ValueError for unknown placeholders."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        raise ValueError("unbalanced braces; write {{ or }} for a literal brace") from None
    names = ", ".join(f"{{{n}}}" for n in PLACEHOLDERS)
    parts: Parts = []
    for literal, field, spec, conversion in parsed:
        if field is not None and (field not in PLACEHOLDERS or spec or conversion):
            raise ValueError(f"unknown placeholder {{{field}}}; use {names}")
        parts.append((literal, field))
    return parts


def _render(parts: Parts, values: dict[str, str], encode: Callable[[str], str]) -> str:
    return "".join(literal + (encode(values[field]) if field else "") for literal, field in parts)


def _url_parts(template: str, *, placeholders: bool = True) -> tuple[Parts, str, int]:
    """Parse and check a URL template: (parts with literal text quoted, host, port)."""
    parts = [(quote(lit, safe=_URL_KEEP), f) for lit, f in _parse(template)]
    has_fields = any(f for _, f in parts)
    if has_fields and not placeholders:
        raise ValueError("placeholders are not allowed here")
    prefix = "".join(lit for lit, _ in parts[: next((i for i, (_, f) in enumerate(parts) if f), 0) + 1])
    if has_fields and not _NETLOC_DONE.match(prefix):
        raise ValueError("placeholders may only appear in the path, query or fragment")
    sample = urlsplit(_render(parts, dict.fromkeys(PLACEHOLDERS, "x"), str))
    try:
        port = sample.port
    except ValueError:
        raise ValueError("invalid port") from None
    if sample.scheme.lower() not in ("http", "https") or not sample.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return parts, sample.hostname, port or (443 if sample.scheme.lower() == "https" else 80)


class HttpOptions(ConnectorOptions):
    """Options of the `http` kind (see the module docstring)."""

    model_config = ConfigDict(hide_input_in_errors=True)  # a URL or a header may carry a secret

    # declared secrets (connectors.secrets): the URLs' userinfo and query values, every header value, `auth`
    SECRET_URLS: ClassVar[tuple[str, ...]] = ("url", "ping_url")
    SECRET_MAPS: ClassVar[tuple[str, ...]] = ("headers",)
    PUBLIC_HEADERS: ClassVar[tuple[str, ...]] = ("Accept", "Accept-Language", "Content-Type", "User-Agent")

    url: str
    method: Literal["GET", "POST"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    public_headers: list[str] = Field(default_factory=list, max_length=100)  # header values shown to admins
    public_params: list[str] = Field(default_factory=list, max_length=100)  # query values shown to admins
    max_bytes: int = Field(default=1_048_576, gt=0)
    items: Expression | None = None
    fields: dict[str, Expression] | None = None
    not_found: Literal["empty", "error"] = "empty"
    max_connections: int = Field(default=100, ge=1)
    verify_tls: bool = True
    ca_file: str | None = None
    ping_url: str | None = None
    search_url: str | None = None
    auth: Auth | None = None

    @field_validator("url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        _url_parts(v)
        return v

    @field_validator("ping_url")
    @classmethod
    def _check_ping_url(cls, v: str | None) -> str | None:
        if v is not None:
            _url_parts(v, placeholders=False)
        return v

    @field_validator("search_url")
    @classmethod
    def _check_search_url(cls, v: str | None) -> str | None:
        if v is not None:
            if "{text}" not in v:
                raise ValueError("search_url needs the {text} placeholder")
            _url_parts(v.replace("{text}", "x"), placeholders=False)
            if v.split("{text}", 1)[0].count("/") < 3:
                raise ValueError("{text} may only appear in the path, query or fragment")
        return v

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not HEADER_NAME.match(name):
                raise ValueError(f"invalid header name {name!r}")
            if CONTROL_CHARS.search(value):
                raise ValueError(f"header {name} holds a control character")
            _parse(value)
        return v

    @field_validator("ca_file")
    @classmethod
    def _check_ca_file(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return v
        if info.data.get("verify_tls") is False:
            raise ValueError("ca_file needs verify_tls: true")
        if not os.path.isfile(v):
            raise ValueError("no such file; a PEM bundle of trusted CA certificates is expected")
        return v

    @field_validator("auth")
    @classmethod
    def _check_auth(cls, v: BearerAuth | BasicAuth | ApiKeyAuth | None,
                    info: ValidationInfo) -> BearerAuth | BasicAuth | ApiKeyAuth | None:
        if v is None:
            return v
        sent = v.headers()
        if any(CONTROL_CHARS.search(value) for value in sent.values()):
            raise ValueError("the secret holds a control character")
        taken = {name.lower() for name in info.data.get("headers") or {}}
        clash = sorted(name for name in sent if name.lower() in taken)
        if clash:
            raise ValueError(f"header {clash[0]} is set both by auth and by headers; keep one")
        return v


def _header_value(value: str) -> str:
    return CONTROL_CHARS.sub("", value)


def _url_value(value: str) -> str:
    return quote(value, safe="")


async def tls_setting(verify_tls: bool, ca_file: str | None) -> ssl.SSLContext | bool:
    """aiohttp's `ssl` for these options: a context trusting `ca_file` (read in a thread), else `verify_tls`;
    ConnectorError when the file is no PEM bundle of CA certificates."""
    if ca_file is None:
        return verify_tls
    try:
        return await asyncio.to_thread(ssl.create_default_context, cafile=ca_file)
    except (OSError, ssl.SSLError, ValueError) as err:
        raise ConnectorError("ca_file is not a readable PEM bundle of CA certificates") from err


class _LaneResolver(AbstractResolver):
    """aiohttp's resolver, checking every address against the connector's lanes before it is used."""

    def __init__(self, lanes: Lanes) -> None:
        self.lanes = lanes
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        """The addresses of `host`, each one allowed; LaneRefused (an OSError) when one is not."""
        found = await self._inner.resolve(host, port, family)
        for info in found:
            self.lanes.check_address(host, info["host"])
        return found

    async def close(self) -> None:
        """Release the inner resolver."""
        await self._inner.close()


def _refused(err: BaseException) -> LaneRefused | None:
    seen: BaseException | None = err
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, LaneRefused):
            return seen
        inner = getattr(seen, "os_error", None)
        seen = inner if isinstance(inner, BaseException) else seen.__cause__
    return None


def _check_literal(lanes: Lanes, host: str) -> None:
    """An IP literal host is not resolved (aiohttp connects to it directly): check it here."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return
    lanes.check_address(host, host.strip("[]"))


@contextlib.contextmanager
def _errors(where: str) -> Iterator[None]:
    """Turn aiohttp's failures into short ConnectorErrors; timeouts and cancellation pass through."""
    try:
        yield
    except (ConnectorError, TimeoutError):
        raise
    except (aiohttp.ClientError, OSError, ValueError) as err:
        refused = _refused(err)
        if refused is None:
            raise _short(err, where) from err
        raise ConnectorError(str(refused)) from None


def _short(err: BaseException, where: str) -> ConnectorError:
    """The short reason of an aiohttp failure."""
    try:
        raise err
    except aiohttp.ClientConnectorCertificateError:
        return ConnectorError(f"TLS certificate of {where} is not trusted")
    except aiohttp.ClientSSLError:
        return ConnectorError(f"TLS handshake with {where} failed")
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError, ConnectionError):
        return ConnectorError(f"cannot connect to {where}")  # refused, reset, closed early
    except aiohttp.ClientPayloadError:
        return ConnectorError(f"incomplete response from {where}")
    except aiohttp.ClientResponseError:
        return ConnectorError(f"bad HTTP response from {where}")
    except BaseException:
        return ConnectorError(f"request to {where} failed")


async def _drain(resp: aiohttp.ClientResponse) -> None:
    """Read a small unwanted body so the connection can be reused; a big one goes with its connection."""
    seen = 0
    with contextlib.suppress(aiohttp.ClientError, OSError, ValueError):
        async for chunk in resp.content.iter_chunked(_CHUNK):
            seen += len(chunk)
            if seen > _DRAIN_MAX:
                resp.close()
                return


class HttpConnector(Connector):
    """Fetches JSON from an HTTP API; one aiohttp session (a keep-alive pool) per connector."""

    kind: ClassVar[str] = "http"
    Options: ClassVar[type[ConnectorOptions]] = HttpOptions
    options: HttpOptions

    def __init__(self, name: str, options: ConnectorOptions) -> None:
        super().__init__(name, options)
        opts = self.options
        self._url, self._host, self._port = _url_parts(opts.url)
        self._where = f"{self._host}:{self._port}"
        self._headers = {name: _parse(value) for name, value in opts.headers.items()}
        auth = opts.auth
        self._auth_headers = auth.headers() if auth is not None else {}
        self._auth_query = ""
        if isinstance(auth, ApiKeyAuth) and auth.query is not None:
            self._auth_query = f"{quote(auth.query, safe='')}={quote(auth.value.get_secret_value(), safe='')}"
        self._mapping = Mapping(opts.items, opts.fields)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the session and its connection pool (connections are made on first use)."""
        if self._session is not None:
            return
        tls = await tls_setting(self.options.verify_tls, self.options.ca_file)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.options.max_connections, ssl=tls,
                                           resolver=_LaneResolver(self.lanes)),
            timeout=aiohttp.ClientTimeout(total=SAFETY_TIMEOUT_S),
            cookie_jar=aiohttp.DummyCookieJar(),  # lookups for different callers share nothing
            trace_configs=[self._lane_trace()],
            headers={"Accept": "application/json"},
        )

    def _lane_trace(self) -> aiohttp.TraceConfig:
        """Every request, a redirect's too, to an IP literal is checked (a name is checked by the resolver)."""
        trace = aiohttp.TraceConfig()

        allowed: set[str] = set()  # hosts already checked (a literal's check depends on the lanes only)

        async def on_start(_session: aiohttp.ClientSession, _ctx: object,
                           params: aiohttp.TraceRequestStartParams) -> None:
            host = params.url.host or ""
            if host not in allowed:
                _check_literal(self.lanes, host)
                if len(allowed) < 1000:
                    allowed.add(host)

        async def on_redirect(_session: aiohttp.ClientSession, _ctx: object,
                              params: aiohttp.TraceRequestRedirectParams) -> None:
            location = params.response.headers.get("Location", "")
            with contextlib.suppress(ValueError):
                _check_literal(self.lanes, params.url.join(URL(location)).host or "")

        trace.on_request_start.append(on_start)
        trace.on_request_redirect.append(on_redirect)
        return trace

    def check_lanes(self) -> None:
        """An IP-literal host of `url` or `ping_url` must be allowed (names are checked when resolved)."""
        _check_literal(self.lanes, self._host)
        if self.options.ping_url is not None:
            _check_literal(self.lanes, _url_parts(self.options.ping_url, placeholders=False)[1])

    async def close(self) -> None:
        """Close the session and every pooled connection."""
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(Exception):
                await session.close()

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise ConnectorError("connector is not started")
        return self._session

    async def fetch(self, query: LookupQuery) -> dict[str, Any] | list[Any] | None:
        """One request; the JSON answer shaped by `items` and `fields` (see the module docstring)."""
        session = self._require_session()
        opts = self.options
        values = query.template_values()
        headers = {name: _render(parts, values, _header_value) for name, parts in self._headers.items()}
        headers.update(self._auth_headers)
        body = values if opts.method == "POST" else None
        with _errors(self._where):
            url = self._signed(_render(self._url, values, _url_value))
            async with session.request(opts.method, url, headers=headers, json=body,
                                       allow_redirects=opts.auth is None) as resp:
                if resp.status == 204 or (resp.status == 404 and opts.not_found == "empty"):
                    await _drain(resp)
                    return None
                if resp.status >= 300:  # a 3xx left: a redirect not followed (auth) or without a Location
                    await _drain(resp)
                    note = _REDIRECT_NOTE if resp.status < 400 and opts.auth is not None else ""
                    raise ConnectorError(f"HTTP {resp.status}{note}")
                raw = await self._read(resp)
        return self._shape(raw)

    async def _read(self, resp: aiohttp.ClientResponse) -> bytes:
        """The body, read in chunks; stops as soon as it grows past `max_bytes`."""
        limit = self.options.max_bytes
        if resp.content_length is not None and resp.content_length > limit:
            resp.close()
            raise ConnectorError(f"response larger than {limit} bytes")
        if resp.content_length is not None:  # declared and within the limit: one read
            return await resp.read()
        body = bytearray()
        async for chunk in resp.content.iter_chunked(_CHUNK):
            if len(body) + len(chunk) > limit:
                resp.close()
                raise ConnectorError(f"response larger than {limit} bytes")
            body += chunk
        return bytes(body)

    def _signed(self, url: str) -> URL:
        """The rendered URL, with the API key added to its query string when auth says so."""
        if self._auth_query:
            base, hash_, fragment = url.partition("#")
            joint = "" if base.endswith(("?", "&")) else "&" if "?" in base else "?"
            url = f"{base}{joint}{self._auth_query}{hash_}{fragment}"
        return URL(url, encoded=True)

    def _shape(self, raw: bytes) -> dict[str, Any] | list[Any] | None:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise ConnectorError("invalid JSON") from None
        data = self._mapping.apply(data)
        if data is not None and not isinstance(data, dict | list):
            raise ConnectorError(f"expected a JSON object or list, got {type(data).__name__}")
        return data

    async def search(self, text: str, limit: int) -> list[dict[str, Any]]:
        """GET `search_url` with {text} filled; the records it answers (shaped like a lookup's), at most `limit`."""
        if self.options.search_url is None:
            return await super().search(text, limit)
        session = self._require_session()
        url = self.options.search_url.replace("{text}", quote(text, safe=""))
        parts, host, port = _url_parts(url, placeholders=False)
        with _errors(f"{host}:{port}"):
            async with session.get(self._signed(_render(parts, {}, str)), headers=self._auth_headers,
                                   allow_redirects=self.options.auth is None) as resp:
                if resp.status == 404 or resp.status == 204:
                    await _drain(resp)
                    return []
                if resp.status >= 300:
                    await _drain(resp)
                    raise ConnectorError(f"HTTP {resp.status}")
                raw = await self._read(resp)
        data = self._shape(raw)
        records = [data] if isinstance(data, dict) else data or []
        return [r for r in records if isinstance(r, dict)][:limit]

    async def ping(self) -> None:
        """GET `ping_url` (a status below 400 is fine; below 300 with auth), or open a TCP connection."""
        session = self._require_session()
        if self.options.ping_url is None:  # a TCP connection, to an address the lanes allow
            with _errors(self._where):
                _check_literal(self.lanes, self._host)
                family, address = (await self.lanes.resolve(self._host, self._port))[0]
                _, writer = await asyncio.open_connection(address, self._port, family=family)
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            return
        parts, host, port = _url_parts(self.options.ping_url, placeholders=False)
        with _errors(f"{host}:{port}"):
            async with session.get(self._signed(_render(parts, {}, str)), headers=self._auth_headers,
                                   allow_redirects=self.options.auth is None) as resp:
                await _drain(resp)
                if resp.status >= 400 or (resp.status >= 300 and self.options.auth is not None):
                    raise ConnectorError(f"HTTP {resp.status}")
