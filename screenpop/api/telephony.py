"""The generic webhook, `POST /telephony/webhook`: one signed call event per request, answered 202 at once.

A hot route: a plain ASGI endpoint routed in front of FastAPI (see screenpop/app.py), so FastAPI's stack is
not paid on every event. FastAPI's OpenAPI document still describes it (`describe_webhook`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from screenpop.api.deps import error_answer, read_body
from screenpop.models import CallEvent
from screenpop.probes import DRAINING, RETRY_AFTER_S
from screenpop.service import Services
from telephony.base import PayloadError, SignatureError
from telephony.generic import SIGNATURE_HEADER

log = logging.getLogger("screenpop.telephony")

WEBHOOK_PATH = "/telephony/webhook"


class GenericWebhook:
    """The ASGI endpoint of the generic webhook. Errors answer the API's JSON `{"error": ...}`."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            if scope["method"] != "POST":
                raise HTTPException(405, "method not allowed: POST a call event", headers={"Allow": "POST"})
            response = await self.accept(request)
        except Exception as exc:
            response = await error_answer(request, exc)
        await response(scope, receive, send)

    async def accept(self, request: Request) -> Response:
        """Verify the signature, parse the event, hand it to the registry; the lookup runs on."""
        services = self.services
        if services.probes.draining:  # shutting down: the balancer or the PBX sends it elsewhere
            raise HTTPException(503, DRAINING, headers={"Retry-After": str(RETRY_AFTER_S)})
        body = await read_body(request)
        headers = request.headers  # case-insensitive: lower-case keys find their header
        try:
            services.webhook.verify(headers, body, now=time.time())
        except SignatureError as err:
            log.warning("webhook refused from %s: %s", request.client.host if request.client else "?", err)
            raise HTTPException(401, str(err)) from None
        try:
            events = services.webhook.parse(headers, body)
        except PayloadError as err:
            raise HTTPException(err.status, str(err)) from None
        for event in events:
            await services.registry.handle(event)
        return Response(b'{"accepted":%d}' % len(events), status_code=202, media_type="application/json")


def describe_webhook(openapi: dict[str, Any]) -> None:
    """Add the webhook to an OpenAPI document: its body is a CallEvent, its answers 202 or an error."""
    body = CallEvent.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(body.pop("$defs", {}))
    schemas["CallEvent"] = body
    error = {"content": {"application/json": {"schema": {
        "type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}}}}
    openapi.setdefault("paths", {})[WEBHOOK_PATH] = {"post": {
        "tags": ["telephony"],
        "summary": "Report one step of a call",
        "description": "Any PBX that can POST JSON. Answered 202 at once; the lookup runs on. The same event "
                       "twice changes nothing. See docs/telephony/generic-webhook.md.",
        "operationId": "generic_webhook",
        "parameters": [{
            "name": SIGNATURE_HEADER, "in": "header", "required": True, "schema": {"type": "string"},
            "description": 't=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" with the webhook secret>',
        }],
        "requestBody": {"required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CallEvent"}}}},
        "responses": {
            "202": {"description": "accepted", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"accepted": {"type": "integer"}}}}}},
            "400": {"description": "the body is not JSON", **error},
            "401": {"description": "not signed, signed wrongly, or more than 5 minutes off", **error},
            "413": {"description": "the body is larger than 64 KiB", **error},
            "422": {"description": "the body is not a call event; the message names the field", **error},
            "503": {"description": "the instance is shutting down: send it again (to another instance), "
                                   "after `Retry-After` seconds at most", **error},
        },
    }}
