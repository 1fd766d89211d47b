"""Agents in the admin console (`/api/admin/agents`, role admin): list, create, change, disable, delete.

Stored in the state store and live on every instance when the request returns (screenpop/agentadmin.py).
Signing an agent out everywhere is `DELETE /api/admin/agents/{id}/sessions` (the sessions' own module).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response

from screenpop.agentadmin import AgentInput
from screenpop.api.admin import AdminDep
from screenpop.api.deps import ServicesDep, body_doc, read_object
from screenpop.config import ConfigError
from screenpop.service import Services

log = logging.getLogger("screenpop.admin")
router = APIRouter(prefix="/api/admin/agents", tags=["admin"])
MAX_AGENT_BODY = 16 * 1024


@router.get("")
async def list_agents(admin: AdminDep, services: ServicesDep) -> dict[str, Any]:
    """Every agent in effect (file and console), without password hashes."""
    agents = await services.agents.effective()
    return {"agents": [services.agents.public(a) for a in agents]}


@router.post("", status_code=201, openapi_extra=body_doc(AgentInput, "the new agent (`password` required)"))
async def create_agent(request: Request, admin: AdminDep, services: ServicesDep) -> dict[str, Any]:
    """A new agent (`password` required); 422 names what collides or is missing."""
    body = await read_object(request, MAX_AGENT_BODY)
    try:
        agent = await services.agents.put(body, admin.id, create=True)
    except ConfigError as err:
        raise HTTPException(422, str(err)) from None
    log.info("agent %s created by %s", agent.id, admin.id)
    return services.agents.public(agent)


@router.get("/{agent_id}")
async def get_agent(agent_id: str, admin: AdminDep, services: ServicesDep) -> dict[str, Any]:
    """One agent, without the password hash."""
    agent = await services.agents.get(agent_id)
    if agent is None:
        raise HTTPException(404, f"no agent {agent_id!r}")
    return services.agents.public(agent)


@router.put("/{agent_id}", openapi_extra=body_doc(AgentInput, "the agent; without `password` it is kept"))
async def put_agent(agent_id: str, request: Request, admin: AdminDep, services: ServicesDep) -> dict[str, Any]:
    """Change an agent: name, role, extensions, addresses, disabled; `password` resets it."""
    body = await read_object(request, MAX_AGENT_BODY)
    body.pop("origin", None)  # (what GET adds: a GET-edit-PUT round trip works)
    if body.setdefault("id", agent_id) != agent_id:
        raise HTTPException(422, f"id: the body says {body['id']!r} but the URL says {agent_id!r}")
    if agent_id == admin.id and (body.get("disabled") or body.get("role", "admin") != "admin"):
        raise HTTPException(422, "you cannot disable your own account or take away your own admin role")
    try:
        agent = await services.agents.put(body, admin.id, create=False)
    except LookupError:
        raise HTTPException(404, f"no agent {agent_id!r}") from None
    except ConfigError as err:
        raise HTTPException(422, str(err)) from None
    log.info("agent %s changed by %s", agent.id, admin.id)
    if body.get("disabled") or body.get("password"):  # a disabled agent, or a reset password: signed out now
        await _sign_out(services, agent.id)
    return services.agents.public(agent)


@router.delete("/{agent_id}", status_code=204)
async def delete_agent(agent_id: str, admin: AdminDep, services: ServicesDep) -> Response:
    """Remove an agent (also one from the config file: the removal is stored)."""
    if agent_id == admin.id:
        raise HTTPException(422, "you cannot delete your own account")
    known = services.directory.get(agent_id)
    if not await services.agents.delete(agent_id, admin.id):
        raise HTTPException(404, f"no agent {agent_id!r}")
    log.info("agent %s deleted by %s", agent_id, admin.id)
    await _sign_out(services, known.id if known is not None else agent_id)
    return Response(status_code=204)


async def _sign_out(services: Services, agent_id: str) -> None:
    """End every session of the agent on every instance; their open sockets close (4401)."""
    await services.sessions.revoke_agent(agent_id)
    await services.guard.ended(agent_id=agent_id)
