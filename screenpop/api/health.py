"""The probes, `GET /healthz` (alive) and `GET /readyz` (ready for traffic), as plain ASGI endpoints.

Routed in front of FastAPI like the hot routes (screenpop/app.py): a balancer polls them several times a
second, so they skip FastAPI's stack; `describe_probes` adds them to the OpenAPI document. What they check
is screenpop/probes.py.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import Receive, Scope, Send

from screenpop import __version__
from screenpop.service import Services

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"


async def _answer(send: Send, status: int, body: bytes, head: bool) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": b"" if head else body})


class Probe:
    """`/healthz` (`ready=False`) or `/readyz` (`ready=True`); GET or HEAD, else 405 as JSON."""

    def __init__(self, services: Services, *, ready: bool) -> None:
        self.services, self.ready = services, ready

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await _answer(send, 405, b'{"error":"method not allowed: GET the probe"}', False)
            return
        services = self.services
        if self.ready:
            status, body = await services.probes.ready()
        else:
            status, body = 200, json.dumps({"ok": True, "instance": services.probes.instance, "version": __version__,
                                            "events": services.registry.events,
                                            "lookups": len(services.registry.runs),
                                            "draining": services.probes.draining}).encode()
        await _answer(send, status, body, method == "HEAD")


def describe_probes(openapi: dict[str, Any]) -> None:
    """Add /healthz and /readyz to an OpenAPI document."""
    obj = {"type": "object"}
    paths = openapi.setdefault("paths", {})
    paths[HEALTH_PATH] = {"get": {
        "tags": ["probes"], "summary": "Alive", "operationId": "healthz",
        "description": "200 while the process runs, whatever the state of Redis: `ok`, `instance` (this "
                       "process's id), `version`, `calls` (held in memory), `draining` (SIGTERM received).",
        "responses": {"200": {"description": "alive", "content": {"application/json": {"schema": obj}}}}}}
    paths[READY_PATH] = {"get": {
        "tags": ["probes"], "summary": "Ready for traffic", "operationId": "readyz",
        "description": "200 when the bus and the state store answer a ping (bounded, cached for 1 s) and the "
                       "instance is not shutting down; 503 with `reason` otherwise. `checks` gives each part's "
                       "state, `cti` each PBX connection's lease (`held` on the instance running it, `standby` "
                       "elsewhere), without user or secret.",
        "responses": {
            "200": {"description": "ready", "content": {"application/json": {"schema": obj}}},
            "503": {"description": "not ready: a part is unreachable, or the instance is shutting down",
                    "content": {"application/json": {"schema": obj}}},
        }}}
