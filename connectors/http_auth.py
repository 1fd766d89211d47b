"""Authentication of the `http` connector: bearer token, basic, or an API key in a header or the query.

The secrets are pydantic SecretStr: they are not in the options' repr, in validation errors or in any
ConnectorError. `headers()` gives what each one adds to a request (an API key in the query string is
added to the URL by the connector itself).
"""

from __future__ import annotations

import base64
import re
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from connectors.base import ConnectorOptions

__all__ = ["CONTROL_CHARS", "HEADER_NAME", "ApiKeyAuth", "Auth", "BasicAuth", "BearerAuth"]

HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class _AuthOptions(ConnectorOptions):
    model_config = ConfigDict(hide_input_in_errors=True)


class BearerAuth(_AuthOptions):
    """`Authorization: Bearer <token>`."""

    type: Literal["bearer"]
    token: SecretStr = Field(min_length=1)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token.get_secret_value()}"}


class BasicAuth(_AuthOptions):
    """`Authorization: Basic base64(username:password)`."""

    type: Literal["basic"]
    username: str = Field(min_length=1)
    password: SecretStr

    @field_validator("username")
    @classmethod
    def _no_colon(cls, v: str) -> str:
        if ":" in v or CONTROL_CHARS.search(v):
            raise ValueError("a username without ':' or control characters is expected")
        return v

    def headers(self) -> dict[str, str]:
        pair = f"{self.username}:{self.password.get_secret_value()}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}


class ApiKeyAuth(_AuthOptions):
    """An API key in a header (`header: X-Api-Key`) or in the query string (`query: api_key`)."""

    type: Literal["api_key"]
    header: str | None = None
    query: str | None = Field(default=None, min_length=1)
    value: SecretStr = Field(min_length=1)

    @field_validator("header")
    @classmethod
    def _check_header(cls, v: str | None) -> str | None:
        if v is not None and not HEADER_NAME.match(v):
            raise ValueError(f"invalid header name {v!r}")
        return v

    @model_validator(mode="after")
    def _one_place(self) -> ApiKeyAuth:
        if (self.header is None) == (self.query is None):
            raise ValueError("exactly one of 'header' or 'query' is expected")
        return self

    def headers(self) -> dict[str, str]:
        return {} if self.header is None else {self.header: self.value.get_secret_value()}


Auth = Annotated[BearerAuth | BasicAuth | ApiKeyAuth, Field(discriminator="type")]
