"""Twilio Programmable Voice: request signatures, webhook parameters to CallEvents, and TwiML.

Twilio posts two kinds of request to screenpop:
    voice   the number's incoming-call webhook: one `offered` event (call_id = CallSid), answered with TwiML
    status  call-progress callbacks of the legs that <Dial> rings: `ParentCallSid` ties a leg to the call,
            `To` (client:NAME or sip:USER@host) names the agent whose phone rings

X-Twilio-Signature is base64(HMAC-SHA1(auth token, URL + every POST parameter's name and value, sorted by
name, then by value)). A JSON body is signed through the URL alone, which carries `bodySHA256=<hex SHA-256
of the body>`. Twilio may sign the URL with or without the scheme's default port, so both are tried.
Twilio signatures carry no timestamp: there is no replay window to check.

Pure: no I/O. The HTTP routes live in screenpop/api/twilio.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from typing import Literal
from urllib.parse import parse_qs, parse_qsl, urlsplit
from xml.etree import ElementTree as ET

import pydantic_core
from pydantic import ValidationError

from screenpop.models import CallEvent, EventKind, format_validation_error
from telephony.base import PayloadError, SignatureError, WebhookAdapter

SIGNATURE_HEADER = "x-twilio-signature"
STATUS_EVENTS = "initiated ringing answered completed"
DEFAULT_PORTS = {"https": 443, "http": 80}

Params = list[tuple[str, str]]

# CallStatus of a dialled leg -> what it means for the agent at `To`
LEG_STATUS: dict[str, EventKind | None] = {
    "queued": None,
    "initiated": None,
    "ringing": EventKind.RINGING,
    "in-progress": EventKind.ANSWERED,
    "answered": EventKind.ANSWERED,
    "completed": EventKind.WITHDRAWN,  # the registry keeps the card with the agent who answered
    "busy": EventKind.WITHDRAWN,
    "no-answer": EventKind.WITHDRAWN,
    "canceled": EventKind.WITHDRAWN,
    "failed": EventKind.WITHDRAWN,
}
FINAL = frozenset({"completed", "busy", "no-answer", "canceled", "failed"})


# -- signatures --------------------------------------------------------------------------------------
def compute_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """The X-Twilio-Signature value for a POST of `params` to `url`.

    Names are sorted; the values of a repeated name are sorted and each distinct value counted once
    (as Twilio's own libraries do)."""
    by_name: dict[str, set[str]] = {}
    for name, value in params:
        by_name.setdefault(name, set()).add(value)
    data = url + "".join(name + value for name in sorted(by_name) for value in sorted(by_name[name]))
    mac = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def url_variants(url: str) -> list[str]:
    """`url` as given, and with the scheme's default port added (or removed when it is there)."""
    parts = urlsplit(url)
    default = DEFAULT_PORTS.get(parts.scheme.lower())
    if default is None or not parts.netloc:
        return [url]
    userinfo, at, hostport = parts.netloc.rpartition("@")
    host, port = hostport, ""
    if not hostport.endswith("]") and ":" in hostport:
        host, _, port = hostport.rpartition(":")
    if port == "":
        other = f"{host}:{default}"
    elif port == str(default):
        other = host
    else:
        return [url]
    start = url.index(parts.netloc, len(parts.scheme))
    return [url, url[:start] + userinfo + at + other + url[start + len(parts.netloc):]]


def _matches(auth_token: str, url: str, params: Params, signature: str) -> bool:
    given = signature.strip().encode()
    found = False
    for candidate in url_variants(url):  # no early exit: both variants always cost the same
        found |= hmac.compare_digest(compute_signature(auth_token, candidate, params).encode(), given)
    return found


def verify_request(auth_token: str, url: str, body: bytes, signature: str | None,
                   content_type: str = "application/x-www-form-urlencoded") -> Params:
    """Check one request as Twilio signs it; its parameters (repeated names kept, in body order).

    `url` is the full public URL Twilio posted to, query string included. A form body is signed with its
    parameters; a body whose URL carries `bodySHA256` is signed through the URL, and its hash must match.
    Raises SignatureError (missing or wrong signature) or PayloadError (the body cannot be read)."""
    if not auth_token:
        raise SignatureError("no Twilio auth token is configured")
    if not signature:
        raise SignatureError("missing X-Twilio-Signature header")
    body_hash = _body_hash(url)
    if body_hash is not None:
        if not _matches(auth_token, url, [], signature):
            raise SignatureError("X-Twilio-Signature does not match the URL")
        expected = hashlib.sha256(body).hexdigest().encode()
        if not hmac.compare_digest(expected, body_hash.strip().lower().encode()):
            raise SignatureError("bodySHA256 in the URL does not match the body")
        return parse_json(body)
    if content_type.split(";", 1)[0].strip().lower() == "application/json":
        raise SignatureError("a JSON body must be signed with bodySHA256 in the URL")
    params = parse_form(body)
    if not _matches(auth_token, url, params, signature):
        raise SignatureError("X-Twilio-Signature does not match the URL and parameters")
    return params


def _body_hash(url: str) -> str | None:
    """The first `bodySHA256` value in the URL's query string, or None when there is none."""
    values = parse_qs(urlsplit(url).query, keep_blank_values=True).get("bodySHA256")
    return values[0] if values else None


def parse_form(body: bytes) -> Params:
    """An application/x-www-form-urlencoded body as (name, value) pairs; blanks and repeats kept."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("expected a UTF-8 form body, got undecodable bytes") from None
    return parse_qsl(text, keep_blank_values=True)


def parse_json(body: bytes) -> Params:
    """A JSON object body as (name, value) pairs: a list gives one pair per item, null is left out."""
    try:
        data = pydantic_core.from_json(body) if body.strip() else {}
    except ValueError as err:
        raise PayloadError(f"body is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise PayloadError(f"expected a JSON object, got {type(data).__name__}", status=422)
    out: Params = []
    for name, value in data.items():
        for item in value if isinstance(value, list) else [value]:
            if item is None:
                continue
            out.append((name, item if isinstance(item, str) else json.dumps(item)))
    return out


def first_values(params: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Each name's first value."""
    out: dict[str, str] = {}
    for name, value in params:
        out.setdefault(name, value)
    return out


# -- events ------------------------------------------------------------------------------------------
def _event(**fields: object) -> CallEvent:
    try:
        return CallEvent.model_validate(fields)
    except ValidationError as err:
        raise PayloadError(format_validation_error(err), status=422) from None


def _require(params: Mapping[str, str], name: str) -> str:
    value = params.get(name, "").strip()
    if not value:
        raise PayloadError(f"missing {name}: expected a Twilio call webhook with {name}", status=422)
    return value


def voice_events(params: Mapping[str, str]) -> list[CallEvent]:
    """The incoming-call webhook: `offered` (call_id = CallSid, caller = From, called = To)."""
    return [_event(call_id=_require(params, "CallSid"), event=EventKind.OFFERED, caller=params.get("From", ""),
                   called=params.get("To") or None)]


def known_status(status: str) -> bool:
    """True when `status` is a CallStatus this adapter knows."""
    return status.strip().lower() in LEG_STATUS


def status_events(params: Mapping[str, str]) -> list[CallEvent]:
    """A status callback: the dialled leg's step for the agent at `To`, or the end of the parent call.

    A CallStatus this adapter does not know gives no event (see `known_status`)."""
    sid = _require(params, "CallSid")
    status = params.get("CallStatus", "").strip().lower()
    parent = params.get("ParentCallSid", "").strip()
    caller = params.get("From", "")
    if status not in LEG_STATUS:
        return []
    if not parent:  # the caller's own call
        own = EventKind.ENDED if status in FINAL else EventKind.OFFERED
        return [_event(call_id=sid, event=own, caller=caller, called=params.get("To") or None)]
    kind = LEG_STATUS[status]
    agent = params.get("To", "").strip()
    if kind is None or not agent:
        return []
    return [_event(call_id=parent, event=kind, caller=caller, agents=[agent])]


# -- TwiML -------------------------------------------------------------------------------------------
def _document(response: ET.Element) -> str:
    return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(response, encoding="unicode")


def redirect_twiml(url: str) -> str:
    """`<Response><Redirect method="POST">url</Redirect></Response>`: hand the call to your own TwiML app."""
    response = ET.Element("Response")
    ET.SubElement(response, "Redirect", method="POST").text = url
    return _document(response)


def dial_twiml(addresses: Iterable[str], status_url: str, timeout_s: int = 30) -> str:
    """Ring every address at once (`client:NAME` -> <Client>, `sip:...` -> <Sip>), each leg reporting
    initiated, ringing, answered and completed to `status_url`. Other addresses are left out."""
    response = ET.Element("Response")
    dial = ET.SubElement(response, "Dial", timeout=str(timeout_s), answerOnBridge="true")
    callback = {"statusCallback": status_url, "statusCallbackEvent": STATUS_EVENTS, "statusCallbackMethod": "POST"}
    for address in addresses:
        scheme, _, rest = address.partition(":")
        if scheme.lower() == "client" and rest:
            ET.SubElement(dial, "Client", callback).text = rest
        elif scheme.lower() in ("sip", "sips") and rest:
            ET.SubElement(dial, "Sip", callback).text = address
    return _document(response)


def say_hangup_twiml(text: str) -> str:
    """`<Response><Say>text</Say><Hangup/></Response>`."""
    response = ET.Element("Response")
    ET.SubElement(response, "Say").text = text
    ET.SubElement(response, "Hangup")
    return _document(response)


def is_dialable(address: str) -> bool:
    """True for the addresses `dial_twiml` can ring: client:NAME and sip:/sips: URIs."""
    scheme, sep, rest = address.partition(":")
    return bool(sep and rest) and scheme.lower() in ("client", "sip", "sips")


# -- the webhook seam --------------------------------------------------------------------------------
class TwilioWebhook(WebhookAdapter):
    """One Twilio request. Twilio signs the URL it posted to, so an instance is made per request with
    that URL; `kind` says which webhook it is (voice or status)."""

    name = "twilio"

    def __init__(self, auth_token: str, url: str, kind: Literal["voice", "status"]) -> None:
        self.auth_token = auth_token
        self.url = url
        self.kind = kind

    def verify(self, headers: Mapping[str, str], body: bytes, *, now: float) -> None:
        """Check X-Twilio-Signature (Twilio's signatures carry no time, so `now` is not used)."""
        verify_request(self.auth_token, self.url, body, headers.get(SIGNATURE_HEADER),
                       headers.get("content-type", ""))

    def params(self, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        """The request's parameters, each name's first value."""
        if _body_hash(self.url) is not None:
            return first_values(parse_json(body))
        return first_values(parse_form(body))

    def parse(self, headers: Mapping[str, str], body: bytes) -> list[CallEvent]:
        """The voice webhook gives `offered`; a status callback gives the leg's step or the call's end."""
        params = self.params(headers, body)
        return voice_events(params) if self.kind == "voice" else status_events(params)
