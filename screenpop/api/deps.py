"""Dependencies shared by the routes: the running services and the logged-in agent."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from starlette.requests import HTTPConnection

from screenpop.auth import COOKIE_NAME, Agent
from screenpop.service import Services


def services_of(conn: HTTPConnection) -> Services:
    """The Services of the running application."""
    return conn.app.state.services


async def get_services(conn: HTTPConnection) -> Services:
    """The Services, as a dependency. `async` on purpose: FastAPI runs a plain `def` dependency in its
    thread pool, a thread hop on every request of the hot path."""
    return conn.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def session_token(conn: HTTPConnection) -> tuple[str | None, bool]:
    """(token, came_from_cookie): `Authorization: Bearer` first, then the session cookie."""
    header = conn.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip(), False
    return conn.cookies.get(COOKIE_NAME), True


async def current_agent(request: Request, services: ServicesDep) -> Agent:
    """The agent of a valid session, else 401."""
    token, _ = session_token(request)
    agent_id = services.tokens.check(token)
    agent = services.directory.get(agent_id) if agent_id else None
    if agent is None:
        raise HTTPException(401, "not logged in")
    return agent


AgentDep = Annotated[Agent, Depends(current_agent)]
