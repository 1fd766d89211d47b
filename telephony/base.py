"""The telephony seam: adapters turn a protocol's wire format into CallEvents, and know nothing else.

Two shapes:
    WebhookAdapter  the PBX calls us over HTTP: `verify` the request, then `parse` its body. Both are pure
                    (no I/O), so they are tested with bytes alone.
    CtiAdapter      we hold a connection to the PBX (Asterisk AMI, FreeSWITCH ESL): `events()` yields
                    CallEvents for as long as the adapter runs, reconnecting with backoff by itself.

Errors (a tree, the base first):
    TelephonyError
    ├── SignatureError   the request is not signed, signed wrongly, or too old (HTTP 401 / 403)
    └── PayloadError     the body is not what the protocol says (HTTP 400 / 422)
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping
from typing import Self

from screenpop.models import CallEvent


class TelephonyError(Exception):
    """Base of the errors an adapter raises; the message is short and safe to return to the PBX."""


class SignatureError(TelephonyError):
    """Missing, wrong or expired signature."""


class PayloadError(TelephonyError):
    """The body cannot be read as this protocol's message. `status` is 400 (syntax) or 422 (content)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class WebhookAdapter(abc.ABC):
    """A protocol where the PBX posts HTTP requests to screenpop."""

    name: str

    @abc.abstractmethod
    def verify(self, headers: Mapping[str, str], body: bytes, *, now: float) -> None:
        """Check the request's authenticity. `headers` keys are lower-case; `now` is Unix time.

        Returns None when the request is authentic; raises SignatureError saying why when it is not.
        Must compare secrets in constant time.
        """

    @abc.abstractmethod
    def parse(self, headers: Mapping[str, str], body: bytes) -> list[CallEvent]:
        """Turn one verified request into zero or more CallEvents, in order.

        Raises PayloadError with a message that says what was expected and what came.
        """


class CtiAdapter(abc.ABC):
    """A protocol where screenpop holds a connection to the PBX; chosen by its URL scheme (screenpop.plugins)."""

    name: str

    @classmethod
    @abc.abstractmethod
    def from_url(cls, url: str) -> Self:
        """Build the adapter from its connection URL (`scheme://user:secret@host:port?options`); no I/O.

        Raises ValueError saying what was expected when the URL is malformed; the message never quotes the
        secret.
        """

    @abc.abstractmethod
    def events(self) -> AsyncIterator[CallEvent]:
        """Yield CallEvents until cancelled. Connects, logs in, and after a drop reconnects with
        exponential backoff and logs in again; never raises for a connection problem (it logs it)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the connection; an iteration of `events()` in progress ends. Must not raise."""
