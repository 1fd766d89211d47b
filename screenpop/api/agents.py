"""Agent endpoints: login, logout, who am I, the demo's simulated call, and the agent socket `GET /ws/agent`.

The socket is a hot route: a plain ASGI endpoint routed in front of FastAPI (see screenpop/app.py), so an
idle socket holds no FastAPI frames and an agent's message does not resume them.
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from screenpop import protocol
from screenpop.api.deps import AgentDep, ServicesDep, read_model, session_token
from screenpop.auth import COOKIE_NAME
from screenpop.callstore import CallStoreError
from screenpop.models import CallEvent, EventKind
from screenpop.service import Services

log = logging.getLogger("screenpop.agents")
router = APIRouter()


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class DemoCall(BaseModel):
    number: str = Field(min_length=1, max_length=64)


@router.post("/api/login")
async def login(request: Request, response: Response, services: ServicesDep) -> dict[str, Any]:
    """Check the password; answer a bearer token and set the session cookie."""
    body = await read_model(request, LoginRequest, 4096)
    agent = await services.directory.authenticate(body.username, body.password)
    if agent is None:
        log.info("failed login for %r", body.username[:64])
        raise HTTPException(401, "wrong username or password")
    token = services.tokens.issue(agent.id)
    response.set_cookie(COOKIE_NAME, token, max_age=services.tokens.ttl_s, httponly=True, samesite="strict",
                        secure=services.settings.cookie_secure, path="/")
    return {"token": token, "agent": {"id": agent.id, "name": agent.name or agent.id, "role": agent.role}}


@router.post("/api/logout", status_code=204)
async def logout(response: Response) -> Response:
    """Forget the session cookie."""
    response.delete_cookie(COOKIE_NAME, path="/")
    response.status_code = 204
    return response


@router.get("/api/me")
async def me(agent: AgentDep, services: ServicesDep) -> dict[str, Any]:
    """The logged-in agent, and whether this is the demo."""
    return {**agent.public(), "demo": services.settings.demo}


@router.post("/api/demo/call", status_code=202)
async def demo_call(request: Request, agent: AgentDep, services: ServicesDep) -> dict[str, str]:
    """Demo only: ring the logged-in agent with a call from `number`."""
    if not services.settings.demo:
        raise HTTPException(404, "not found")
    body = await read_model(request, DemoCall, 4096)
    call_id = f"demo-{secrets.token_hex(6)}"
    for kind in (EventKind.OFFERED, EventKind.RINGING):
        await services.registry.handle(CallEvent(call_id=call_id, event=kind, caller=body.number,
                                                 agents=[agent.id] if kind is EventKind.RINGING else []))
    return {"call_id": call_id}


def _origin_allowed(ws: WebSocket, allowed: list[str]) -> bool:
    origin = ws.headers.get("origin")
    if origin is None:  # not a browser: the cookie cannot have been sent by another site's page
        return True
    origin = origin.rstrip("/")
    scheme = "https" if ws.url.scheme == "wss" else "http"
    host = ws.headers.get("host", "")
    return origin == f"{scheme}://{host}" or origin in allowed


SOCKET_PATH = "/ws/agent"


class AgentSocket:
    """The ASGI endpoint of the agent socket: a snapshot, then every message for the agent's calls."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await agent_socket(self.services, WebSocket(scope, receive, send))


async def agent_socket(services: Services, ws: WebSocket) -> None:
    """Check the session (and, for a cookie, the page's origin), then attach the socket to the hub until the
    agent leaves; the agent's own messages are `ack`, `select`, `wrapup` and `wrapup.draft`."""
    token, from_cookie = session_token(ws)
    agent_id = services.tokens.check(token)
    agent = services.directory.get(agent_id) if agent_id else None
    await ws.accept()
    if agent is None:
        await ws.close(code=1008, reason="not logged in")
        return
    if from_cookie and not _origin_allowed(ws, services.settings.allowed_origins):
        log.warning("socket of %s refused: origin %r not allowed", agent.id, ws.headers.get("origin"))
        await ws.close(code=1008, reason="origin not allowed")
        return
    conn = await services.hub.attach(agent.id, ws)
    try:
        while True:
            text = await ws.receive_text()
            await _agent_message(services, agent.id, text)
    except WebSocketDisconnect:
        pass
    finally:
        await services.hub.detach(conn)


async def _agent_message(services: Services, agent_id: str, text: str) -> None:
    """Handle `ack`, `select`, `wrapup` and `wrapup.draft` from an agent; anything else is logged and ignored."""
    try:
        m = json.loads(text)
    except json.JSONDecodeError:
        log.info("agent %s sent something that is not JSON", agent_id)
        return
    if not isinstance(m, dict):
        return
    kind = m.get("type")
    if kind == "ack":
        waited = services.hub.acked(agent_id, str(m.get("call_id"))[:200])
        if waited is not None:
            services.metrics.display_latency.observe(waited)
        await services.access.displayed(agent_id, str(m.get("call_id"))[:200], waited)
    elif kind == "select" and isinstance(m.get("call_id"), str) and m.get("customer_id") is not None:
        call_id = m["call_id"][:200]
        try:
            refused = await services.registry.select(agent_id, call_id, str(m["customer_id"])[:200])
        except CallStoreError as err:
            refused = str(err)
        if refused:
            log.info("select on %s by %s refused: %s", call_id, agent_id, refused)
        else:
            await services.access.chosen(agent_id, call_id, str(m["customer_id"])[:200])
    elif kind in ("wrapup", "wrapup.draft"):
        await _wrapup(services, agent_id, m)
    else:
        log.info("agent %s sent an unknown message type %r", agent_id, str(kind)[:50])


async def _wrapup(services: Services, agent_id: str, m: dict[str, Any]) -> None:
    """Save a wrap-up (the agent hears back through `wrapup.state`) or keep the notes typed so far."""
    request = protocol.read_request(m)
    if isinstance(request, protocol.WrapUpRequest):
        refused = await services.journal.save(agent_id, request)
    elif isinstance(request, protocol.DraftRequest):
        refused = await services.journal.draft(agent_id, request)
    else:
        refused = request if isinstance(request, str) else "not a wrap-up"
    if refused:
        log.info("wrap-up by %s refused: %s", agent_id, refused)
