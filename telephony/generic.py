"""The generic webhook: any PBX that can POST JSON.

Body: {"call_id", "event": offered|ringing|answered|ended, "caller", "called"?, "agents"?, "at"?}
Header: X-Screenpop-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" with the secret>
A timestamp more than `tolerance_s` away from now is a replay.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping

import pydantic_core
from pydantic import ValidationError

from screenpop.models import CallEvent, format_validation_error
from telephony.base import PayloadError, SignatureError, WebhookAdapter

SIGNATURE_HEADER = "x-screenpop-signature"
TOLERANCE_S = 300


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The X-Screenpop-Signature header value for `body`."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.digest(secret.encode(), f"{t}.".encode() + body, "sha256").hex()  # one-shot, in C
    return f"t={t},v1={mac}"


class GenericWebhook(WebhookAdapter):
    """The documented JSON webhook with an HMAC-SHA256 signature."""

    name = "generic"

    def __init__(self, secret: str | None, tolerance_s: int = TOLERANCE_S) -> None:
        self.secret = secret
        self.tolerance_s = tolerance_s

    def verify(self, headers: Mapping[str, str], body: bytes, *, now: float) -> None:
        """Accept only a body signed with the secret within the tolerance window."""
        if not self.secret:
            raise SignatureError("webhook secret is not configured on the server (SCREENPOP_WEBHOOK_SECRET)")
        value = headers.get(SIGNATURE_HEADER)
        if not value:
            raise SignatureError("missing X-Screenpop-Signature header")
        parts: dict[str, list[str]] = {}
        for item in value.split(","):
            k, sep, v = item.strip().partition("=")
            if sep:
                parts.setdefault(k, []).append(v)
        if "t" not in parts or "v1" not in parts:
            raise SignatureError("malformed X-Screenpop-Signature: expected t=<unix seconds>,v1=<hex>")
        try:
            t = int(parts["t"][0])
        except ValueError:
            raise SignatureError("malformed X-Screenpop-Signature: t is not a number") from None
        if abs(now - t) > self.tolerance_s:
            raise SignatureError(f"signature timestamp is more than {self.tolerance_s} s away from server time")
        expected = sign(body, self.secret, t).split("v1=", 1)[1]
        if not any(hmac.compare_digest(expected, v) for v in parts["v1"]):
            raise SignatureError("signature does not match the body")

    def parse(self, headers: Mapping[str, str], body: bytes) -> list[CallEvent]:
        """One JSON object gives one CallEvent."""
        try:  # the usual case in one pass (pydantic parses the JSON itself); errors are explained below
            return [CallEvent.model_validate_json(body)]
        except ValidationError:
            pass
        try:  # pydantic-core's parser: more than 200 levels of nesting is an error, never a RecursionError
            data = pydantic_core.from_json(body)
        except ValueError as err:
            raise PayloadError(f"body is not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise PayloadError(f"expected a JSON object, got {type(data).__name__}", status=422)
        try:
            return [CallEvent.model_validate(data)]
        except ValidationError as err:
            raise PayloadError(format_validation_error(err, root="body"), status=422) from None
