"""The demo's CRM: takes wrap-ups (the `journal` connector writes them here) and shows records' pages.

    POST /api/calls             a wrap-up as JSON, with `Idempotency-Key`: 201 the first time, 200 with the
                                same entry for a key it has (exactly one entry per key), 400 without a key,
                                503 while down
    GET  /api/calls[?customer_id=C1001]   the entries it holds, oldest first
    POST /admin/down            {"down": true | false}: make the CRM fail (503) or work again, to watch
                                screenpop retry. Also: start with SCREENPOP_DEMO_CRM_DOWN=1.
    GET  /customers/{id}, /customers/new?phone=..., /orders/{id}   small HTML pages ("Open in CRM" links)
    GET  /health                {"ok": true} (also while down: the process is up)
"""

from __future__ import annotations

import html
import os
from typing import Any

from aiohttp import web

from screenpop.demo import data

_MAX_BODY = 64 * 1024


class Crm:
    """The CRM's state: its entries by idempotency key, and whether it is down."""

    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.entries: dict[str, dict[str, Any]] = {}

    async def take(self, request: web.Request) -> web.Response:
        if self.down:
            return web.json_response({"error": "the CRM is down for maintenance"}, status=503)
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key or len(key) > 200:
            return web.json_response({"error": "an Idempotency-Key header is required"}, status=400)
        if key in self.entries:
            return web.json_response(self.entries[key], status=200)
        if (request.content_length or 0) > _MAX_BODY:
            return web.json_response({"error": "body too large"}, status=413)
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "the body is not JSON"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "expected a JSON object"}, status=400)
        entry = {**body, "idempotency_key": key, "id": len(self.entries) + 1}
        self.entries[key] = entry
        return web.json_response(entry, status=201)

    async def list(self, request: web.Request) -> web.Response:
        wanted = request.query.get("customer_id")
        return web.json_response([e for e in self.entries.values()
                                  if wanted is None or e.get("customer_id") == wanted])

    async def set_down(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("down"), bool):
            return web.json_response({"error": 'expected {"down": true} or {"down": false}'}, status=400)
        self.down = body["down"]
        return web.json_response({"down": self.down})

    async def customer_page(self, request: web.Request) -> web.Response:
        c = data.customer(request.match_info["customer_id"])
        if c is None:
            return _page("No such customer", "<p>This customer is not in the demo CRM.</p>", 404)
        calls = [e for e in self.entries.values() if e.get("customer_id") == c.id]
        rows = "".join(f"<li>{html.escape(str(e.get('saved_at', '')))}: {html.escape(str(e.get('disposition', '')))}"
                       f" — {html.escape(str(e.get('notes', '')))}</li>" for e in calls) or "<li>none yet</li>"
        body = (f"<p>{html.escape(c.company)} · {html.escape(c.city)} · {html.escape(c.phone)} · "
                f"{html.escape(c.email)}</p><h2>Calls logged by screenpop</h2><ul>{rows}</ul>")
        return _page(c.name, body)

    async def new_customer(self, request: web.Request) -> web.Response:
        phone = html.escape(request.query.get("phone", ""))
        return _page("New customer", f'<form><label>Name <input name="name"></label> '
                                     f'<label>Phone <input name="phone" value="{phone}"></label></form>')

    async def order_page(self, request: web.Request) -> web.Response:
        order = next((o for o in data.sample_data().orders if o.id == request.match_info["order_id"]), None)
        if order is None:
            return _page("No such order", "<p>This order is not in the demo CRM.</p>", 404)
        lines = "".join(f"<li>{html.escape(ln.sku)} × {ln.qty}</li>" for ln in order.lines)
        return _page(f"Order {order.id}", f"<p>{html.escape(order.ordered_at)} · {order.total:.2f} "
                                          f"{html.escape(order.currency)}</p><ul>{lines}</ul>")


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = (f"<!doctype html><html lang=en><meta charset=utf-8><title>{html.escape(title)} — demo CRM</title>"
            f"<h1>{html.escape(title)}</h1>{body}</html>")
    return web.Response(text=text, status=status, content_type="text/html",
                        headers={"Content-Security-Policy": "default-src 'none'"})


def make_crm_app(crm: Crm | None = None) -> web.Application:
    """The CRM's aiohttp application (down at start when SCREENPOP_DEMO_CRM_DOWN=1)."""
    crm = crm or Crm(down=os.environ.get("SCREENPOP_DEMO_CRM_DOWN") == "1")

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "down": crm.down})

    app = web.Application(client_max_size=_MAX_BODY)
    app.router.add_post("/api/calls", crm.take)
    app.router.add_get("/api/calls", crm.list)
    app.router.add_post("/admin/down", crm.set_down)
    app.router.add_get("/customers/new", crm.new_customer)
    app.router.add_get("/customers/{customer_id}", crm.customer_page)
    app.router.add_get("/orders/{order_id}", crm.order_page)
    app.router.add_get("/health", health)
    return app
