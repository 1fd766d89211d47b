"""Telephony endpoints: the generic webhook (`POST /telephony/webhook`)."""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from screenpop.api.deps import services_of
from telephony.base import PayloadError, SignatureError

log = logging.getLogger("screenpop.telephony")
router = APIRouter()

MAX_BODY = 64 * 1024


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body, or 413 as soon as it grows past `limit` (the rest is never read)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/telephony/webhook", status_code=202)
async def generic_webhook(request: Request) -> Response:
    """Accept a signed call event; answer 202 at once, the lookup runs on."""
    services = services_of(request)  # no dependency machinery on the hot path (see bench/RESULTS.md)
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
