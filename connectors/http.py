"""The `http` connector kind: one JSON request per lookup, over a kept-alive aiohttp session.

    url      "https://crm.example/api/customers?phone={phone}"   placeholders: {phone} {customer_id}
             {raw} {called}, each percent-encoded (nothing is safe: "+" becomes "%2B", "/" "%2F")
    items    "data.customers"       the list inside the answer (optional)
    fields   {"balance": "account.balance"}   output key -> dotted path, applied to the object or to
             each item of the list (optional; a missing path gives None)

Placeholders may appear in the path, the query and the fragment, never in the scheme or the host.
Header values may hold placeholders too; there they are inserted as they are, minus control characters.
A dotted path walks objects by key and lists by index ("phones.0").

Outcomes: 2xx with JSON -> the (mapped) data, `null` / `[]` / 204 -> None, 404 -> None or
ConnectorError("HTTP 404") as `not_found` says, other >= 400 -> ConnectorError("HTTP <code>"), a body over
`max_bytes` -> ConnectorError, no connection -> ConnectorError("cannot connect to <host>:<port>").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import string
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlsplit

import aiohttp
from pydantic import ConfigDict, Field, field_validator
from yarl import URL

from connectors.base import Connector, ConnectorError, ConnectorOptions
from screenpop.models import LookupQuery

PLACEHOLDERS = tuple(LookupQuery(phone="").template_values())  # phone, raw, called, customer_id
SAFETY_TIMEOUT_S = 60.0  # the caller cancels much earlier; this only stops a request living forever
_URL_KEEP = "!#$%&'()*+,/:;=?@[]~"  # literal URL text: keep reserved characters and existing %-escapes
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NETLOC_DONE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*[/?#]")
_CHUNK = 65536
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


def _check_path(path: str) -> str:
    if not path or any(not key for key in path.split(".")):
        raise ValueError("a dotted path like 'data.customers' is expected")
    return path


def dig(data: Any, path: str) -> Any:
    """The value at a dotted path (keys of objects, indexes of lists), or None when it is missing."""
    for key in path.split("."):
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and key.lstrip("-").isdigit():
            index = int(key)
            data = data[index] if -len(data) <= index < len(data) else None
        else:
            return None
        if data is None:
            return None
    return data


class HttpOptions(ConnectorOptions):
    """Options of the `http` kind (see the module docstring)."""

    model_config = ConfigDict(hide_input_in_errors=True)  # a URL or a header may carry a secret

    url: str
    method: Literal["GET", "POST"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    max_bytes: int = Field(default=1_048_576, gt=0)
    items: str | None = None
    fields: dict[str, str] | None = None
    not_found: Literal["empty", "error"] = "empty"
    max_connections: int = Field(default=100, ge=1)
    verify_tls: bool = True
    ping_url: str | None = None

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

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"invalid header name {name!r}")
            if _CONTROL.search(value):
                raise ValueError(f"header {name} holds a control character")
            _parse(value)
        return v

    @field_validator("items", "fields")
    @classmethod
    def _check_paths(cls, v: str | dict[str, str] | None) -> str | dict[str, str] | None:
        for path in [] if v is None else [v] if isinstance(v, str) else v.values():
            _check_path(path)
        return v


def _header_value(value: str) -> str:
    return _CONTROL.sub("", value)


def _url_value(value: str) -> str:
    return quote(value, safe="")


@contextlib.contextmanager
def _errors(where: str) -> Iterator[None]:
    """Turn aiohttp's failures into short ConnectorErrors; timeouts and cancellation pass through."""
    try:
        yield
    except (ConnectorError, TimeoutError):
        raise
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError, ConnectionError) as err:
        raise ConnectorError(f"cannot connect to {where}") from err  # refused, reset, closed early
    except aiohttp.ClientPayloadError as err:
        raise ConnectorError(f"incomplete response from {where}") from err
    except aiohttp.ClientResponseError as err:
        raise ConnectorError(f"bad HTTP response from {where}") from err
    except (aiohttp.ClientError, OSError, ValueError) as err:
        raise ConnectorError(f"request to {where} failed") from err


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
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the session and its connection pool (connections are made on first use)."""
        if self._session is not None:
            return
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.options.max_connections, ssl=self.options.verify_tls),
            timeout=aiohttp.ClientTimeout(total=SAFETY_TIMEOUT_S),
            cookie_jar=aiohttp.DummyCookieJar(),  # lookups for different callers share nothing
            headers={"Accept": "application/json"},
        )

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
        body = values if opts.method == "POST" else None
        with _errors(self._where):
            url = URL(_render(self._url, values, _url_value), encoded=True)
            async with session.request(opts.method, url, headers=headers, json=body) as resp:
                if resp.status == 204 or (resp.status == 404 and opts.not_found == "empty"):
                    await _drain(resp)
                    return None
                if resp.status >= 400:
                    await _drain(resp)
                    raise ConnectorError(f"HTTP {resp.status}")
                raw = await self._read(resp)
        return self._shape(raw)

    async def _read(self, resp: aiohttp.ClientResponse) -> bytes:
        """The body, read in chunks; stops as soon as it grows past `max_bytes`."""
        limit = self.options.max_bytes
        if resp.content_length is not None and resp.content_length > limit:
            resp.close()
            raise ConnectorError(f"response larger than {limit} bytes")
        body = bytearray()
        async for chunk in resp.content.iter_chunked(_CHUNK):
            if len(body) + len(chunk) > limit:
                resp.close()
                raise ConnectorError(f"response larger than {limit} bytes")
            body += chunk
        return bytes(body)

    def _shape(self, raw: bytes) -> dict[str, Any] | list[Any] | None:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise ConnectorError("invalid JSON") from None
        opts = self.options
        if opts.items is not None:
            data = dig(data, opts.items)
            if data is not None and not isinstance(data, list):
                raise ConnectorError(f"expected a list at {opts.items}")
        if data is None or data == []:
            return None
        if opts.fields is not None:
            data = [self._pick(x) for x in data] if isinstance(data, list) else self._pick(data)
        if not isinstance(data, dict | list):
            raise ConnectorError(f"expected a JSON object or list, got {type(data).__name__}")
        return data

    def _pick(self, obj: Any) -> dict[str, Any]:
        assert self.options.fields is not None
        return {key: dig(obj, path) for key, path in self.options.fields.items()}

    async def ping(self) -> None:
        """GET `ping_url` (any status below 400 is fine), or open a TCP connection to the url's host."""
        session = self._require_session()
        if self.options.ping_url is None:
            with _errors(self._where):
                _, writer = await asyncio.open_connection(self._host, self._port)
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            return
        parts, host, port = _url_parts(self.options.ping_url, placeholders=False)
        with _errors(f"{host}:{port}"):
            async with session.get(URL(_render(parts, {}, str), encoded=True)) as resp:
                await _drain(resp)
                if resp.status >= 400:
                    raise ConnectorError(f"HTTP {resp.status}")
