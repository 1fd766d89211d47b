"""Agent endpoints: login, logout, who am I, the demo's simulated call, and the agent socket `GET /ws/agent`.

The socket is a hot route: a plain ASGI endpoint routed in front of FastAPI (see screenpop/app.py), so an
idle socket holds no FastAPI frames and an agent's message does not resume them.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from screenpop import jsonlimits, protocol
from screenpop.api.deps import AgentDep, ServicesDep, body_doc, current_session, home_of, read_model, session_token
from screenpop.auth import COOKIE_NAME, LoginBusy
from screenpop.callstore import CallStoreError
from screenpop.models import CallEvent, EventKind
from screenpop.names import canonical
from screenpop.service import Services
from screenpop.sessions import SessionStoreError

log = logging.getLogger("screenpop.agents")
router = APIRouter()


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class DemoCall(BaseModel):
    number: str = Field(min_length=1, max_length=64)


@router.post("/api/login", openapi_extra=body_doc(LoginRequest), responses={
    401: {"description": "wrong username or password"},
    429: {"description": "too many failed logins: wait `Retry-After` seconds"}})
async def login(request: Request, response: Response, services: ServicesDep) -> dict[str, Any]:
    """Check the password; answer a bearer token and set the session cookie. Failed logins per user and per
    address are throttled (screenpop/throttle.py): 429 with Retry-After, before any password is hashed."""
    body = await read_model(request, LoginRequest, 4096)
    user, address = canonical(body.username), request.client.host if request.client else "?"
    wait = await services.throttle.retry_after(user, address)
    if wait:
        raise HTTPException(429, f"too many failed logins; try again in {wait} s", headers={"Retry-After": str(wait)})
    try:
        agent = await services.directory.authenticate(body.username, body.password)
    except LoginBusy as err:
        raise HTTPException(429, str(err), headers={"Retry-After": "1"}) from None
    if agent is None:
        await services.throttle.failed(user, address)
        log.info("failed login for %r from %s", body.username[:64], address)
        raise HTTPException(401, "wrong username or password")
    await services.throttle.succeeded(user)
    token, _ = await services.sessions.create(agent.id)
    response.set_cookie(COOKIE_NAME, token, max_age=services.sessions.ttl_s, httponly=True, samesite="strict",
                        secure=services.settings.cookie_secure, path="/")
    return {"token": token, "agent": {"id": agent.id, "name": agent.name or agent.id, "role": agent.role},
            "home": home_of(agent.role)}


@router.post("/api/logout", status_code=204)
async def logout(request: Request, response: Response, services: ServicesDep) -> Response:
    """End the session (its token stops working everywhere, its sockets close) and forget the cookie."""
    token, _ = session_token(request)
    session = await services.sessions.check(token)
    if session is not None:
        await services.sessions.revoke(session.id)
        await services.guard.ended(sid=session.id)
    response.delete_cookie(COOKIE_NAME, path="/")
    response.status_code = 204
    return response


@router.get("/api/me")
async def me(agent: AgentDep, services: ServicesDep) -> dict[str, Any]:
    """The logged-in agent, and whether this is the demo."""
    return {**agent.public(), "demo": services.settings.demo}


@router.post("/api/demo/call", status_code=202, openapi_extra=body_doc(DemoCall))
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
    """Check the session (and, for a cookie, the page's origin) and the agent's socket count, then attach the
    socket to the hub until the agent leaves or the session ends (closed 4401); the agent's own messages are
    `ack`, `select`, `wrapup` and `wrapup.draft`. A binary frame closes the socket with 1003, a message nested
    too deeply with 1007."""
    token, from_cookie = session_token(ws)
    try:
        found = await current_session(ws, services)
    except SessionStoreError as err:
        log.warning("socket refused: %s", err)
        await ws.accept()
        await ws.close(code=1013, reason="try again")
        return
    await ws.accept()
    if found is None:
        await ws.close(code=1008, reason="not logged in")
        return
    agent, session = found
    if from_cookie and not _origin_allowed(ws, services.settings.allowed_origins):
        log.warning("socket of %s refused: origin %r not allowed", agent.id, ws.headers.get("origin"))
        await ws.close(code=1008, reason="origin not allowed")
        return
    cap = services.settings.max_sockets_per_agent
    if services.hub.connected(agent.id) >= cap:
        log.warning("socket of %s refused: %d already open", agent.id, cap)
        await ws.close(code=1008, reason=f"too many sockets for this agent (at most {cap})")
        return
    conn = await services.hub.attach(agent.id, ws)
    services.guard.watch(id(conn), session, _closer(ws))
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is None:
                _garbage(agent.id, "a binary frame")
                await ws.close(code=1003, reason="binary frames are not accepted: send JSON text")
                break
            refused = await _agent_message(services, agent.id, text)
            if refused is not None:
                await ws.close(code=1007, reason=refused)
                break
    except WebSocketDisconnect:
        pass
    finally:
        services.guard.unwatch(id(conn))
        await services.hub.detach(conn)


def _closer(ws: WebSocket) -> Callable[[int, str], Awaitable[None]]:
    async def close(code: int, reason: str) -> None:
        await ws.close(code=code, reason=reason)

    return close


class _RateLog:
    """Malformed messages from agents, logged at most once a second (with how many were not logged)."""

    def __init__(self, every_s: float = 1.0) -> None:
        self.every_s, self.next, self.skipped = every_s, 0.0, 0

    def __call__(self, agent_id: str, what: str) -> None:
        now = time.monotonic()
        if now < self.next:
            self.skipped += 1
            return
        skipped, self.skipped, self.next = self.skipped, 0, now + self.every_s
        log.info("agent %s sent %s%s", agent_id, what, f" ({skipped} more not logged)" if skipped else "")


_garbage = _RateLog()


async def _agent_message(services: Services, agent_id: str, text: str) -> str | None:
    """Handle `ack`, `select`, `wrapup` and `wrapup.draft` from an agent; anything else is logged (at a
    bounded rate) and ignored.
    Returns the reason to close the socket (1007) for a message nested too deeply, else None."""
    try:
        m = jsonlimits.loads(text, max_depth=8)
    except jsonlimits.JsonError as err:
        _garbage(agent_id, "something that is not JSON" if "nested" not in str(err) else "JSON nested too deeply")
        return "message nested too deeply" if "nested" in str(err) else None
    if not isinstance(m, dict):
        _garbage(agent_id, "JSON that is not an object")
        return None
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
        _garbage(agent_id, f"an unknown message type {str(kind)[:50]!r}")
    return None


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
