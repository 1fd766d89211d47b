"""The console's own API: its settings from the config, the search by hand, attaching a call to the
customer found, and the wrap-ups of a call (the notes a transfer carries).

    GET  /api/console                    dispositions, links, the new-customer link, translations
    GET  /api/search?q=ada               customers of the identity source matching what the agent typed
    POST /api/calls/{call_id}/attach     {"customer_id", "q"}: the call is this customer's (found by `q`)
    GET  /api/calls/{call_id}/wrapups    every agent's wrap-up (or notes so far) of a call the agent has
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from connectors.base import ConnectorError
from screenpop.api.deps import AgentDep, ServicesDep, body_doc, read_model
from screenpop.callstore import CallStoreError
from screenpop.errors import StoreError

log = logging.getLogger("screenpop.console")
router = APIRouter()

SEARCH_LIMIT = 10


class Attach(BaseModel):
    """Attach the call to a customer the agent found by hand: the customer's id and the search that found it."""

    customer_id: str = Field(min_length=1, max_length=200)
    q: str = Field(min_length=2, max_length=100)


@router.get("/api/console")
async def console_settings(agent: AgentDep, services: ServicesDep) -> dict[str, Any]:
    """What the console needs from the config: dispositions, links per section, translations."""
    config = services.config
    links: dict[str, list[dict[str, str]]] = {}
    row_links: dict[str, dict[str, str]] = {}
    searchable = False
    for c in config.connectors:
        if not c.enabled or c.role == "journal":
            continue
        name = "customer" if c.role in ("identity", "identity_fallback") else c.section_name
        if c.links:
            links.setdefault(name, []).extend(link.model_dump() for link in c.links)
        if c.row_links:
            row_links[name] = dict(c.row_links)
        searchable = searchable or (c.role == "identity" and _can_search(c.options))
    return {
        "dispositions": [{"id": d.id, "label": d.label or d.id.replace("_", " ").capitalize()}
                         for d in config.wrapup.dispositions],
        "journal": any(c.role == "journal" and c.enabled for c in config.connectors),
        "links": links, "row_links": row_links, "search": searchable,
        "new_customer_url": config.console.new_customer_url,
        "translations": config.console.translations,
    }


def _can_search(options: dict[str, Any]) -> bool:
    """Whether an identity connector's options set up a search (sql: search_query, http: search_url; csv
    searches always)."""
    return bool(options.get("search_query") or options.get("search_url") or options.get("path"))


@router.get("/api/search")
async def search(request: Request, agent: AgentDep, services: ServicesDep) -> dict[str, Any]:
    """Customers matching `q` (at least two characters): name, company, email or a number."""
    q = request.query_params.get("q", "").strip()
    if not 2 <= len(q) <= 100:
        raise HTTPException(400, "type at least 2 (at most 100) characters to search")
    try:
        found = await services.lookup.search(q, SEARCH_LIMIT)
    except LookupError as err:
        raise HTTPException(409, f"search is not available: {err}") from None
    except TimeoutError:
        raise HTTPException(504, "the customer source did not answer in time") from None
    except ConnectorError as err:
        raise HTTPException(502, f"search failed: {err}") from None
    return {"customers": [c.model_dump(mode="json") for c in found]}


@router.post("/api/calls/{call_id}/attach", status_code=202, openapi_extra=body_doc(Attach))
async def attach(call_id: str, request: Request, agent: AgentDep, services: ServicesDep) -> dict[str, str]:
    """The call is from this customer (found by the search `q`, run again here): the card fills for them."""
    body = await read_model(request, Attach, 4096)
    try:
        found = await services.lookup.search(body.q, SEARCH_LIMIT)
    except LookupError as err:
        raise HTTPException(409, f"search is not available: {err}") from None
    except (TimeoutError, ConnectorError) as err:
        raise HTTPException(502, f"search failed: {err or 'timeout'}") from None
    customer = next((c for c in found if c.id == body.customer_id), None)
    if customer is None:
        raise HTTPException(409, "that customer is not among the search's results")
    try:
        refused = await services.registry.select(agent.id, call_id[:200], customer.id, found=customer)
    except CallStoreError as err:
        raise HTTPException(503, str(err)) from None
    if refused:
        raise HTTPException(409, refused)
    await services.access.chosen(agent.id, call_id[:200], customer.id)  # the access audit: who chose whom
    log.info("call %s attached to customer %s by %s", call_id[:200], customer.id, agent.id)
    return {"call_id": call_id, "customer_id": customer.id}


@router.get("/api/calls/{call_id}/wrapups")
async def wrapups(call_id: str, agent: AgentDep, services: ServicesDep) -> dict[str, Any]:
    """The wrap-ups (and notes so far) of a call the agent has or had."""
    try:
        rows = await services.journal.for_call(agent.id, call_id[:200])
    except (StoreError, CallStoreError) as err:
        raise HTTPException(503, str(err)) from None
    if rows is None:
        raise HTTPException(404, "no such call for this agent")
    return {"wrapups": rows}
