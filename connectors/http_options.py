"""The `http` connector kind's options (see connectors.http for what each one means) and its templates: a URL
or a header value with placeholders, parsed and checked once when the options are read, rendered per
lookup with each value encoded for where it goes.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Callable
from typing import ClassVar, Literal
from urllib.parse import quote, urlsplit

from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from connectors.base import ConnectorOptions
from connectors.http_auth import CONTROL_CHARS, HEADER_NAME, Auth
from connectors.mapping import Expression
from screenpop.models import LookupQuery

__all__ = ["PLACEHOLDERS", "HttpOptions", "Parts", "HttpClientOptions", "header_value", "parse_template",
           "render", "url_parts", "url_value"]

PLACEHOLDERS = tuple(LookupQuery(phone="").template_values())  # phone, raw, called, customer_id
_URL_KEEP = "!#$%&'()*+,/:;=?@[]~"  # literal URL text: keep reserved characters and existing %-escapes
_NETLOC_DONE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*[/?#]")

Parts = list[tuple[str, str | None]]


def parse_template(template: str) -> Parts:
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


def render(parts: Parts, values: dict[str, str], encode: Callable[[str], str]) -> str:
    return "".join(literal + (encode(values[field]) if field else "") for literal, field in parts)


def url_parts(template: str, *, placeholders: bool = True) -> tuple[Parts, str, int]:
    """Parse and check a URL template: (parts with literal text quoted, host, port)."""
    parts = [(quote(lit, safe=_URL_KEEP), f) for lit, f in parse_template(template)]
    has_fields = any(f for _, f in parts)
    if has_fields and not placeholders:
        raise ValueError("placeholders are not allowed here")
    prefix = "".join(lit for lit, _ in parts[: next((i for i, (_, f) in enumerate(parts) if f), 0) + 1])
    if has_fields and not _NETLOC_DONE.match(prefix):
        raise ValueError("placeholders may only appear in the path, query or fragment")
    sample = urlsplit(render(parts, dict.fromkeys(PLACEHOLDERS, "x"), str))
    try:
        port = sample.port
    except ValueError:
        raise ValueError("invalid port") from None
    if sample.scheme.lower() not in ("http", "https") or not sample.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return parts, sample.hostname, port or (443 if sample.scheme.lower() == "https" else 80)


class HttpClientOptions(ConnectorOptions):
    """What every HTTP kind (the section kind, the journal) checks alike; each declares the fields
    (`headers`, `verify_tls`, `ca_file`, `auth`) in its own order."""

    model_config = ConfigDict(hide_input_in_errors=True)  # a URL or a header may carry a secret

    @field_validator("ca_file", check_fields=False)
    @classmethod
    def _check_ca_file(cls, v: str | None, info: ValidationInfo) -> str | None:
        """An existing file, with verify_tls on."""
        if v is None:
            return v
        if info.data.get("verify_tls") is False:
            raise ValueError("ca_file needs verify_tls: true")
        if not os.path.isfile(v):
            raise ValueError("no such file; a PEM bundle of trusted CA certificates is expected")
        return v

    @field_validator("auth", check_fields=False)
    @classmethod
    def _check_auth(cls, v: Auth | None, info: ValidationInfo) -> Auth | None:
        """No control character in what it sends, and no header that `headers` (validated before) sets too."""
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


class HttpOptions(HttpClientOptions):
    """Options of the `http` kind (see the module docstring)."""

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
        url_parts(v)
        return v

    @field_validator("ping_url")
    @classmethod
    def _check_ping_url(cls, v: str | None) -> str | None:
        if v is not None:
            url_parts(v, placeholders=False)
        return v

    @field_validator("search_url")
    @classmethod
    def _check_search_url(cls, v: str | None) -> str | None:
        if v is not None:
            if "{text}" not in v:
                raise ValueError("search_url needs the {text} placeholder")
            url_parts(v.replace("{text}", "x"), placeholders=False)
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
            parse_template(value)
        return v



def header_value(value: str) -> str:
    return CONTROL_CHARS.sub("", value)


def url_value(value: str) -> str:
    return quote(value, safe="")
