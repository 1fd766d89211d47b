"""Administrators end an agent's sessions: `DELETE /api/admin/agents/{agent_id}/sessions` (204).

Every session of the agent ends on every instance (the session store is shared when the bus is Redis); the
agent's open sockets close with 4401 within a second (at once on this instance) and the console shows the
login page. The agent may log in again: to keep them out, remove them (or change their password) too.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response

from screenpop.api.admin import AdminDep
from screenpop.api.deps import ServicesDep

log = logging.getLogger("screenpop.admin")
router = APIRouter(prefix="/api/admin", tags=["admin"])


@router.delete("/agents/{agent_id}/sessions", status_code=204, responses={204: {"description": "ended"}})
async def revoke_sessions(agent_id: str, admin: AdminDep, services: ServicesDep) -> Response:
    """End every session of an agent (any case of the id); their sockets close. 204 also when there was none."""
    agent = services.directory.get(agent_id)
    target = agent.id if agent is not None else agent_id[:64]
    ended = await services.sessions.revoke_agent(target)
    await services.guard.ended(agent_id=target)
    log.info("%d session(s) of %s ended by %s", ended, target, admin.id)
    return Response(status_code=204)
