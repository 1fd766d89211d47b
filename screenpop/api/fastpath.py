"""The hot path, served in front of the FastAPI application.

The generic webhook (every telephony event) and the agent socket (one long-lived connection per agent)
are plain Starlette endpoints. Going through FastAPI's stack would add about ten middleware layers to every
event (a quarter of the CPU of a call, measured with py-spy in bench/), and to every idle socket a stack of
suspended frames that the garbage collector must walk. Everything else (login, admin, pages, docs) goes to
FastAPI as usual. Errors answer the same JSON `{"error": ...}` as the rest of the API.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from screenpop.api.agents import agent_socket
from screenpop.api.telephony import generic_webhook

log = logging.getLogger("screenpop.api")

WEBHOOK_PATH = "/telephony/webhook"
SOCKET_PATH = "/ws/agent"


class FastPath:
    """An ASGI app: the webhook and the agent socket directly, anything else to `app`."""

    def __init__(self, app: Any) -> None:
        self.app: ASGIApp = app

    def __getattr__(self, name: str) -> Any:  # `state`, `routes`, ... of the FastAPI application
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if scope["type"] == "http" and path == WEBHOOK_PATH and scope["method"] == "POST":
            scope["app"] = self.app
            request = Request(scope, receive)
            try:
                response = await generic_webhook(request)
            except HTTPException as exc:
                response = JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)
            except Exception:
                log.exception("unhandled error on the webhook")
                response = JSONResponse({"error": "internal error"}, status_code=500)
            await response(scope, receive, send)
        elif scope["type"] == "websocket" and path == SOCKET_PATH:
            scope["app"] = self.app
            await agent_socket(WebSocket(scope, receive, send))
        else:
            await self.app(scope, receive, send)
