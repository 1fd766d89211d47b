"""The admin console's connector pages (`/api/admin/...`, role admin): the kinds and their JSON schemas
(the console builds its forms from them), every connector's health at once, the test lookup as a waterfall,
and import and export of the YAML config format."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import yaml
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel

from connectors.base import Connector, Journal
from screenpop.api.admin import MAX_ADMIN_BODY, AdminDep, LookupRequest
from screenpop.api.deps import ServicesDep, body_doc, read_body, read_object
from screenpop.config import ConfigError, ConnectorConfig
from screenpop.lookup import CUSTOMER
from screenpop.models import Card, LookupQuery, Section, SectionStatus
from screenpop.phone import normalize
from screenpop.plugins import PluginError, connector_kinds, journal_kinds
from screenpop.protocol import apply_section
from screenpop.service import Services
from screenpop.sources import Source

router = APIRouter(prefix="/api/admin", tags=["admin"])


@router.get("/kinds")
async def kinds(admin: AdminDep) -> dict[str, Any]:
    """Every installed connector kind with its options' JSON schema (and the journal kinds', for role
    `journal`), and the schema of a connector's common settings: what the console's forms are made of (a
    plugin's kind gets a form for free)."""
    try:
        found, journals = connector_kinds(), journal_kinds()
    except PluginError as err:
        raise HTTPException(500, str(err)) from None
    common = ConnectorConfig.model_json_schema()

    def described(kinds: Mapping[str, type[Connector] | type[Journal]]) -> list[dict[str, Any]]:
        return [{"kind": name, "doc": (cls.__doc__ or "").strip().split("\n")[0],
                 "options": cls.Options.model_json_schema()} for name, cls in sorted(kinds.items())]

    return {"connector": common, "kinds": described(found), "journal_kinds": described(journals)}


@router.get("/health")
async def all_health(admin: AdminDep, services: ServicesDep) -> dict[str, Any]:
    """Every running connector's health over the instances of the cluster (screenpop/healthboard.py):
    breaker, p50/p95, error and timeout rates, cache hit rate, requests in flight."""
    return {"connectors": services.health.merged()}


def _cache_state(source: Source | None, section: Section) -> str:
    if section.status is SectionStatus.STALE and section.cached:
        return "stale"
    if section.cached:
        return "hit"
    return "off" if source is None or source.policy is None else "miss"


@router.post("/lookup/waterfall", openapi_extra=body_doc(LookupRequest, "the caller's number"))
async def waterfall(request: Request, admin: AdminDep, services: ServicesDep) -> dict[str, Any]:
    """The test lookup: for each connector when it started and settled (identity first, then the sections
    in parallel), its status, cache state, reason and mapped data; and the card as an agent sees it."""
    body = await read_object(request, MAX_ADMIN_BODY)
    number = body.get("number")
    if not isinstance(number, str) or not number.strip() or len(number) > 64:
        raise HTTPException(422, "number: a phone number is required, e.g. +14155550100")
    return await run_waterfall(services, number, body.get("customer_id"))


async def run_waterfall(services: Services, number: str, picked: object = None) -> dict[str, Any]:
    """Run the lookup and time each section (see `waterfall`)."""
    caller = normalize(number, services.settings.default_region)
    lookup = services.lookup
    settled: list[tuple[Section, float]] = []
    t0 = time.perf_counter()

    async def emit(section: Section) -> None:
        settled.append((section, (time.perf_counter() - t0) * 1000))

    if caller.status != "ok":
        settled.extend((s, 0.0) for s in lookup.initial_sections(caller))
    elif isinstance(picked, str) and picked:
        assert caller.e164 is not None
        await lookup.run_sections(LookupQuery(phone=caller.e164, raw=caller.raw, customer_id=picked), emit)
    else:
        await lookup.run(caller, None, emit)
    elapsed = (time.perf_counter() - t0) * 1000
    by_name = {s.name: s for s in lookup.sources}
    rows = []
    for section, end_ms in settled:
        source = by_name.get(section.source)
        took = section.latency_ms or 0.0
        rows.append({"connector": section.source, "section": section.name, "title": section.title,
                     "role": source.config.role if source else ("identity" if section.name == CUSTOMER else ""),
                     "start_ms": round(max(0.0, end_ms - took), 1), "end_ms": round(end_ms, 1),
                     "latency_ms": section.latency_ms, "status": section.status.value,
                     "cache": _cache_state(source, section), "age_s": section.age_s, "reason": section.reason,
                     "data": section.data})
    card = Card(call_id="test-lookup", caller=caller, state="ringing",
                sections=[s.model_copy() for s in lookup.initial_sections(caller)] if caller.status == "ok" else [])
    for section, _ in settled:
        apply_section(card, section)
    as_agent, masked = services.masker.card(card, "agent")
    return {"caller": caller.model_dump(mode="json"), "elapsed_ms": round(elapsed, 1),
            "deadline_ms": round(lookup.deadline_s * 1000), "rows": rows,
            "card": as_agent.model_dump(mode="json"), "masked_for_agents": masked}


# -- import and export -------------------------------------------------------------------------------

@router.get("/config.yaml")
async def export_config(admin: AdminDep, services: ServicesDep) -> Response:
    """The connectors in effect as the config file's `connectors:` (secrets as ********: importing the file
    again keeps the stored secrets of connectors of the same name)."""
    connectors = []
    for c in await services.admin.effective():
        public = services.admin.public(c)
        public.pop("origin", None)
        connectors.append(public)
    text = yaml.safe_dump({"connectors": connectors}, sort_keys=False, allow_unicode=True)
    return Response(text, media_type="application/yaml",
                    headers={"Content-Disposition": 'attachment; filename="screenpop-connectors.yaml"'})


def _is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower() == "application/json"


class ConfigImport(BaseModel):
    """A config file's text (its `connectors:` are imported), sent as JSON by the console."""

    yaml: str


@router.post("/config", openapi_extra=body_doc(ConfigImport, "the config file's text as JSON (scripts with a "
                                                             "bearer token may send the YAML itself)"))
async def import_config(request: Request, admin: AdminDep, services: ServicesDep) -> dict[str, Any]:
    """Import the `connectors:` of a config file: each is created or replaced, after all of them were checked
    together; 422 names the first problem and nothing is changed. The body is the file's text (YAML, for
    scripts with a bearer token), or JSON: `{"yaml": "<the file's text>"}` (what the console sends: a
    browser's cookie-carried request must be JSON) or the file's content as a JSON object."""
    raw = await read_body(request, MAX_ADMIN_BODY)
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
        if _is_json(request) and isinstance(data, dict) and set(data) == {"yaml"}:
            if not isinstance(data["yaml"], str):
                raise HTTPException(422, "yaml: the config file's text, as a string")
            data = yaml.safe_load(data["yaml"])
    except (UnicodeDecodeError, yaml.YAMLError) as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise HTTPException(400, f"not valid YAML{where}") from None
    if not isinstance(data, dict) or not isinstance(data.get("connectors"), list):
        raise HTTPException(422, "expected a mapping with a `connectors:` list (the config file's format)")
    others = sorted(set(data) - {"connectors"})
    bodies = data["connectors"]
    if not all(isinstance(b, dict) and isinstance(b.get("name"), str) for b in bodies):
        raise HTTPException(422, "connectors: every entry needs a `name`")
    try:
        await services.admin.check_many(bodies)
        for body in bodies:
            await services.admin.put(body["name"], body, admin.id)
    except ConfigError as err:
        raise HTTPException(422, str(err)) from None
    return {"imported": [b["name"] for b in bodies], "ignored": others}
