"""The access audit (`/api/admin/access`, role admin) and the live view (`/api/admin/live`, supervisors and
admins): who was shown which customer, and what is ringing now."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from screenpop.api.admin import AdminDep, SupervisorDep
from screenpop.api.deps import ServicesDep
from screenpop.models import Card
from screenpop.service import Services

router = APIRouter(prefix="/api/admin", tags=["admin"])
CSV_FIELDS = ("time", "agent", "action", "customer_id", "call_id", "sections", "masked", "latency_ms")
LIVE_AGENTS_MAX = 2000


def _when(text: str | None, name: str) -> float | None:
    """An ISO-8601 date or time (UTC unless it says), or unix seconds, as unix seconds."""
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(422, f"{name}: expected a date like 2026-11-30 or 2026-11-30T08:00:00Z") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


async def _rows(services: Services, customer: str | None, agent: str | None, since: str | None,
                until: str | None, limit: int) -> list[dict[str, Any]]:
    await services.access.flush()  # what was queued a moment ago is part of the answer
    return await services.access.log.query(customer=customer or None, agent=agent or None,
                                           since=_when(since, "since"), until=_when(until, "until"),
                                           limit=max(1, min(limit, 10_000)))


@router.get("/access")
async def access(admin: AdminDep, services: ServicesDep, customer: str | None = Query(None, max_length=200),
                 agent: str | None = Query(None, max_length=64), since: str | None = None,
                 until: str | None = None, limit: int = 500) -> dict[str, Any]:
    """Who was shown which customer, newest first: by customer, by agent, between two times."""
    rows = await _rows(services, customer, agent, since, until, limit)
    return {"entries": rows, "retention_days": services.settings.access_retention_days}


@router.get("/access.csv")
async def access_csv(admin: AdminDep, services: ServicesDep, customer: str | None = Query(None, max_length=200),
                     agent: str | None = Query(None, max_length=64), since: str | None = None,
                     until: str | None = None, limit: int = 10_000) -> Response:
    """The same rows as CSV (time in UTC ISO-8601, sections separated by spaces)."""
    rows = await _rows(services, customer, agent, since, until, limit)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    for r in rows:
        writer.writerow([datetime.fromtimestamp(r["at"], UTC).isoformat(timespec="seconds"), r["agent"], r["action"],
                         r["customer_id"] or "", r["call_id"], " ".join(r["sections"] or []),
                         "yes" if r["masked"] else "no", "" if r["latency_ms"] is None else r["latency_ms"]])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="screenpop-access.csv"'})


def _customer(card: Card) -> str:
    if card.customer is not None:
        return card.customer.name
    if card.candidates:
        return f"{len(card.candidates)} possible customers"
    return ""


@router.get("/live")
async def live(viewer: SupervisorDep, services: ServicesDep) -> dict[str, Any]:
    """The calls ringing or answered now (from the shared call store), which agents have which card and how
    long their browsers took to show it, and every connector's health at a glance."""
    calls: dict[str, dict[str, Any]] = {}
    for agent in services.directory.agents()[:LIVE_AGENTS_MAX]:
        for card in await services.calls.active(agent.id):
            if card.state == "ended":  # (kept for the agent's wrap-up: not a call in progress)
                continue
            shown, _ = services.masker.card(card, viewer.role)
            entry = calls.setdefault(card.call_id, {
                "call_id": card.call_id, "state": card.state, "caller": card.caller.display or card.caller.raw,
                "customer": _customer(shown), "answered_by": card.answered_by,
                "started_at": card.started_at.isoformat() if card.started_at else None, "agents": []})
            entry["agents"].append({"id": agent.id, "name": agent.name or agent.id})
    if calls:
        await services.access.flush()
        shown_rows = await services.access.log.query(since=time.time() - services.settings.call_ttl_s, limit=5000)
        latency = {(r["call_id"], r["agent"]): r["latency_ms"] for r in shown_rows
                   if r["action"] == "displayed" and r["call_id"] in calls}
        for entry in calls.values():
            for a in entry["agents"]:
                a["display_ms"] = latency.get((entry["call_id"], a["id"]))
    ordered = sorted(calls.values(), key=lambda c: c["started_at"] or "")
    return {"calls": ordered, "connectors": services.health.merged(),
            "at": datetime.now(UTC).isoformat(timespec="seconds")}
