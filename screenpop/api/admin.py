"""The administrators' API (`/api/admin/...`, role admin): connectors, health, a debugging lookup, audit."""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel

from screenpop.api.deps import AgentDep, ServicesDep, body_doc, read_object
from screenpop.auth import Agent
from screenpop.config import ConfigError, ConnectorConfig
from screenpop.lookup import CUSTOMER
from screenpop.models import LookupQuery, Section
from screenpop.phone import normalize

log = logging.getLogger("screenpop.admin")


async def require_admin(agent: AgentDep) -> Agent:
    """The logged-in agent, who must have the admin role (else 403)."""
    if agent.role != "admin":
        raise HTTPException(403, "the admin role is required")
    return agent


async def require_supervisor(agent: AgentDep) -> Agent:
    """The logged-in agent, who must be a supervisor or an admin (else 403): the live view."""
    if agent.role not in ("supervisor", "admin"):
        raise HTTPException(403, "the supervisor or admin role is required")
    return agent


AdminDep = Annotated[Agent, Depends(require_admin)]
SupervisorDep = Annotated[Agent, Depends(require_supervisor)]
router = APIRouter(prefix="/api/admin", tags=["admin"])
MAX_ADMIN_BODY = 256 * 1024


@router.get("/connectors")
async def list_connectors(admin: AdminDep, services: ServicesDep) -> dict[str, Any]:
    """Every connector in effect (file and admin changes), secrets replaced."""
    connectors = await services.admin.effective()
    return {"connectors": [services.admin.public(c) for c in connectors]}


@router.get("/connectors/{name}")
async def get_connector(name: str, admin: AdminDep, services: ServicesDep) -> dict[str, Any]:
    """One connector, secrets replaced."""
    for c in await services.admin.effective():
        if c.name == name:
            return services.admin.public(c)
    raise HTTPException(404, f"no connector named {name!r}")


@router.put("/connectors/{name}", openapi_extra=body_doc(ConnectorConfig, "the connector (`name` may be left out)"))
async def put_connector(name: str, request: Request, response: Response, admin: AdminDep,
                        services: ServicesDep) -> dict[str, Any]:
    """Create or replace a connector; it is live on every instance when this answers."""
    body = await read_object(request, MAX_ADMIN_BODY)
    if body.get("name", name) != name:
        raise HTTPException(422, f"name: the body says {body['name']!r} but the URL says {name!r}")
    try:
        cfg, created = await services.admin.put(name, body, admin.id)
    except ConfigError as err:
        raise HTTPException(422, str(err)) from None
    log.info("connector %s %s by %s", name, "created" if created else "changed", admin.id)
    response.status_code = 201 if created else 200
    return services.admin.public(cfg)


@router.delete("/connectors/{name}", status_code=204)
async def delete_connector(name: str, admin: AdminDep, services: ServicesDep) -> Response:
    """Remove a connector (also one from the config file: the removal is stored)."""
    try:
        found = await services.admin.delete(name, admin.id)
    except ConfigError as err:
        raise HTTPException(422, str(err)) from None
    if not found:
        raise HTTPException(404, f"no connector named {name!r}")
    log.info("connector %s deleted by %s", name, admin.id)
    return Response(status_code=204)


@router.get("/connectors/{name}/health")
async def connector_health(name: str, admin: AdminDep, services: ServicesDep, ping: bool = False) -> dict[str, Any]:
    """Breaker state, latency percentiles, outcomes, cache hit rate; `?ping=true` also pings the source."""
    source = next((s for s in services.lookup.sources if s.name == name), None)
    if source is None:
        raise HTTPException(404, f"no running connector named {name!r}")
    out: dict[str, Any] = {
        "name": name,
        "breaker": {"state": source.breaker.state, "consecutive_failures": source.breaker.failures,
                    "retry_in_s": round(source.breaker.retry_in_s(), 1), "opened": source.breaker.opened_count},
        "latency": source.stats.percentiles(),
        "outcomes": dict(source.stats.outcomes),
        "errors": sum(n for k, n in source.stats.outcomes.items() if k in ("error", "timeout", "unavailable")),
        "in_flight": source.bulkhead.in_flight,
        "bulkhead_refused": source.bulkhead.refused,
        "cache": {"outcomes": dict(source.stats.cache), "hit_rate": source.stats.hit_rate()},
    }
    if ping:
        t0 = time.perf_counter()
        try:
            await source.connector.ping()
            out["ping"] = {"ok": True, "latency_ms": round((time.perf_counter() - t0) * 1000, 1)}
        except Exception as err:
            out["ping"] = {"ok": False, "error": str(err)[:200]}
    return out


class LookupRequest(BaseModel):
    """A debugging lookup: the caller's number, optionally the dialled one and a customer to pick."""

    number: str
    called: str | None = None
    customer_id: str | None = None


@router.post("/lookup", openapi_extra=body_doc(LookupRequest))
async def debug_lookup(request: Request, admin: AdminDep, services: ServicesDep) -> dict[str, Any]:
    """Run a whole lookup for a number without any call: each connector's status, latency, cache, data."""
    body = await read_object(request, MAX_ADMIN_BODY)
    number = body.get("number")
    if not isinstance(number, str) or not number.strip():
        raise HTTPException(422, "number: a phone number is required, e.g. +14155550100")
    called = body.get("called") if isinstance(body.get("called"), str) else None
    caller = normalize(number, services.settings.default_region)
    sections: list[Section] = []

    async def emit(section: Section) -> None:
        sections.append(section)

    t0 = time.perf_counter()
    lookup = services.lookup
    if caller.status == "ok":
        await lookup.run(caller, called, emit)
    else:
        sections.extend(lookup.initial_sections(caller))
    customer = next((s for s in sections if s.name == CUSTOMER), None)
    picked = body.get("customer_id")
    if isinstance(picked, str) and customer is not None and caller.e164:
        sections = [s for s in sections if s.name == CUSTOMER]
        await lookup.run_sections(LookupQuery(phone=caller.e164, raw=caller.raw, called=called, customer_id=picked),
                                  emit)
    return {"caller": caller.model_dump(mode="json"), "elapsed_ms": round((time.perf_counter() - t0) * 1000, 1),
            "sections": [s.model_dump(mode="json") for s in sections]}


@router.get("/audit")
async def audit(admin: AdminDep, services: ServicesDep, limit: int = 100) -> dict[str, Any]:
    """The latest changes: who, when, what (secrets replaced)."""
    return {"entries": await services.store.audit(max(1, min(limit, 1000)))}
