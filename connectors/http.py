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
import json
from typing import Any, ClassVar
from urllib.parse import quote

import aiohttp
from yarl import URL

from connectors.base import Connector, ConnectorError, ConnectorOptions
from connectors.http_auth import ApiKeyAuth
from connectors.http_options import HttpOptions, header_value, parse_template, render, url_parts, url_value
from connectors.http_transport import SAFETY_TIMEOUT_S, LaneResolver, check_literal, drain, http_errors, tls_setting
from connectors.mapping import Mapping
from screenpop.models import LookupQuery

__all__ = ["HttpConnector", "HttpOptions"]

_REDIRECT_NOTE = " (redirects are not followed when auth is set)"
_CHUNK = 65536


class HttpConnector(Connector):
    """Fetches JSON from an HTTP API; one aiohttp session (a keep-alive pool) per connector."""

    kind: ClassVar[str] = "http"
    Options: ClassVar[type[ConnectorOptions]] = HttpOptions
    options: HttpOptions

    def __init__(self, name: str, options: ConnectorOptions) -> None:
        super().__init__(name, options)
        opts = self.options
        self._url, self._host, self._port = url_parts(opts.url)
        self._where = f"{self._host}:{self._port}"
        self._headers = {name: parse_template(value) for name, value in opts.headers.items()}
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
                                           resolver=LaneResolver(self.lanes)),
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
                check_literal(self.lanes, host)
                if len(allowed) < 1000:
                    allowed.add(host)

        async def on_redirect(_session: aiohttp.ClientSession, _ctx: object,
                              params: aiohttp.TraceRequestRedirectParams) -> None:
            location = params.response.headers.get("Location", "")
            with contextlib.suppress(ValueError):
                check_literal(self.lanes, params.url.join(URL(location)).host or "")

        trace.on_request_start.append(on_start)
        trace.on_request_redirect.append(on_redirect)
        return trace

    def check_lanes(self) -> None:
        """An IP-literal host of `url` or `ping_url` must be allowed (names are checked when resolved)."""
        check_literal(self.lanes, self._host)
        if self.options.ping_url is not None:
            check_literal(self.lanes, url_parts(self.options.ping_url, placeholders=False)[1])

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
        headers = {name: render(parts, values, header_value) for name, parts in self._headers.items()}
        headers.update(self._auth_headers)
        body = values if opts.method == "POST" else None
        with http_errors(self._where):
            url = self._signed(render(self._url, values, url_value))
            async with session.request(opts.method, url, headers=headers, json=body,
                                       allow_redirects=opts.auth is None) as resp:
                if resp.status == 204 or (resp.status == 404 and opts.not_found == "empty"):
                    await drain(resp)
                    return None
                if resp.status >= 300:  # a 3xx left: a redirect not followed (auth) or without a Location
                    await drain(resp)
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
        parts, host, port = url_parts(url, placeholders=False)
        with http_errors(f"{host}:{port}"):
            async with session.get(self._signed(render(parts, {}, str)), headers=self._auth_headers,
                                   allow_redirects=self.options.auth is None) as resp:
                if resp.status == 404 or resp.status == 204:
                    await drain(resp)
                    return []
                if resp.status >= 300:
                    await drain(resp)
                    raise ConnectorError(f"HTTP {resp.status}")
                raw = await self._read(resp)
        data = self._shape(raw)
        records = [data] if isinstance(data, dict) else data or []
        return [r for r in records if isinstance(r, dict)][:limit]

    async def ping(self) -> None:
        """GET `ping_url` (a status below 400 is fine; below 300 with auth), or open a TCP connection."""
        session = self._require_session()
        if self.options.ping_url is None:  # a TCP connection, to an address the lanes allow
            with http_errors(self._where):
                check_literal(self.lanes, self._host)
                family, address = (await self.lanes.resolve(self._host, self._port))[0]
                _, writer = await asyncio.open_connection(address, self._port, family=family)
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            return
        parts, host, port = url_parts(self.options.ping_url, placeholders=False)
        with http_errors(f"{host}:{port}"):
            async with session.get(self._signed(render(parts, {}, str)), headers=self._auth_headers,
                                   allow_redirects=self.options.auth is None) as resp:
                await drain(resp)
                if resp.status >= 400 or (resp.status >= 300 and self.options.auth is not None):
                    raise ConnectorError(f"HTTP {resp.status}")
