"""Twilio endpoints: the voice webhook (`POST /telephony/twilio/voice`) and status callbacks
(`POST /telephony/twilio/status`). The protocol lives in telephony/twilio.py; here are HTTP and config."""

from __future__ import annotations

import logging
import time
from typing import Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from screenpop.api.deps import ServicesDep, read_body
from screenpop.models import CallEvent
from screenpop.phone import normalize
from screenpop.probes import DRAINING, RETRY_AFTER_S
from screenpop.service import Services
from telephony import twilio
from telephony.base import PayloadError, SignatureError

log = logging.getLogger("screenpop.telephony.twilio")
router = APIRouter()

VOICE_PATH = "/telephony/twilio/voice"
STATUS_PATH = "/telephony/twilio/status"
NOT_CONFIGURED = "Twilio is not configured (SCREENPOP_TWILIO_AUTH_TOKEN)"
NOBODY = "Sorry, nobody can take your call right now. Please call again later."
XML = "application/xml"


def public_base(request: Request, services: Services) -> str:
    """The base URL Twilio reaches screenpop at: SCREENPOP_TWILIO_PUBLIC_URL, else the request's own."""
    configured = services.settings.twilio_public_url
    return (configured or str(request.base_url)).rstrip("/")


def signed_url(request: Request, services: Services) -> str:
    """The full URL Twilio signed: the public base, the request path and its query string."""
    if not services.settings.twilio_public_url:
        return str(request.url)
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else request.url.path
    query = request.scope.get("query_string", b"").decode("latin-1")
    return public_base(request, services) + path + (f"?{query}" if query else "")


async def _read(request: Request, services: Services,
                kind: Literal["voice", "status"]) -> tuple[dict[str, str], list[CallEvent]]:
    """The verified request's parameters and events; 403 unconfigured or badly signed, 413 too big, 503 draining."""
    if services.probes.draining:  # shutting down: Twilio's retry or fallback URL, or the balancer, goes elsewhere
        raise HTTPException(503, DRAINING, headers={"Retry-After": str(RETRY_AFTER_S)})
    token = services.settings.twilio_auth_token
    if token is None or not token.get_secret_value():
        raise HTTPException(403, NOT_CONFIGURED)
    body = await read_body(request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    adapter = twilio.TwilioWebhook(token.get_secret_value(), signed_url(request, services), kind)
    try:
        adapter.verify(headers, body, now=time.time())
    except SignatureError as err:
        log.warning("Twilio %s request refused from %s: %s", kind, request.client.host if request.client else "?", err)
        raise HTTPException(403, str(err)) from None
    try:
        return adapter.params(headers, body), adapter.parse(headers, body)
    except PayloadError as err:
        raise HTTPException(err.status, str(err)) from None


def dial_addresses(services: Services, called: str | None) -> list[str]:
    """The Twilio addresses (client:, sip:) of the agents configured for the called number."""
    cfg = services.config.telephony.twilio
    region = services.settings.default_region
    agents = cfg.default_agents
    number = normalize(called or "", region).e164
    for key, listed in cfg.numbers.items():
        if key == called or (number and normalize(key, region).e164 == number):
            agents = listed
            break
    out: list[str] = []
    for name in agents:
        agent_id = services.directory.resolve(name)
        agent = services.directory.get(agent_id) if agent_id else None
        if agent is None:
            log.warning("Twilio number %s: no agent %r in the config", called, name)
            continue
        found = [a for a in agent.addresses if twilio.is_dialable(a)]
        if not found:
            log.warning("agent %s has no Twilio address (client:NAME or sip:URI) to dial", agent.id)
        out.extend(a for a in found if a not in out)
    return out


FORM_BODY = {"requestBody": {"required": True, "description": "Twilio's parameters, signed (X-Twilio-Signature)",
                             "content": {"application/x-www-form-urlencoded": {"schema": {
                                 "type": "object", "additionalProperties": {"type": "string"}}}}}}


@router.post(VOICE_PATH, response_class=Response, openapi_extra=FORM_BODY)
async def voice(request: Request, services: ServicesDep) -> Response:
    """Start the lookup (`offered`), then answer TwiML: Redirect to your app, or Dial the agents."""
    params, events = await _read(request, services, "voice")
    for event in events:
        await services.registry.handle(event)
    settings = services.settings
    if settings.twilio_redirect_url:
        return Response(twilio.redirect_twiml(settings.twilio_redirect_url), media_type=XML)
    called = params.get("To")
    addresses = dial_addresses(services, called)
    if not addresses:
        log.warning("Twilio call %s to %s: no agent to dial; the caller hears a message and the call ends",
                    params.get("CallSid"), called)
        return Response(twilio.say_hangup_twiml(NOBODY), media_type=XML)
    cfg = services.config.telephony.twilio
    twiml = twilio.dial_twiml(addresses, public_base(request, services) + STATUS_PATH, cfg.ring_timeout_s)
    return Response(twiml, media_type=XML)


@router.post(STATUS_PATH, status_code=204, response_class=Response, openapi_extra=FORM_BODY)
async def status(request: Request, services: ServicesDep) -> Response:
    """A dialled leg (or the call) changed state: ringing, answered, withdrawn for that agent, or ended."""
    params, events = await _read(request, services, "status")
    call_status = params.get("CallStatus", "")
    if not twilio.known_status(call_status):
        log.info("Twilio status %r for call %s ignored: not a CallStatus screenpop knows", call_status[:40],
                 params.get("CallSid"))
    for event in events:
        await services.registry.handle(event)
    return Response(status_code=204)
