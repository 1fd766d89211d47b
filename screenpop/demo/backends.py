"""The demo's accounting and credit systems: two small real HTTP servers (aiohttp.web), one per process.

    python -m screenpop.demo.backends accounting --port 8101 [--host 127.0.0.1] [--latency-scale 1.0]
    python -m screenpop.demo.backends credit --port 8102

    accounting  GET /api/balance/{customer_id} -> {"customer_id","balance","currency","overdue","last_payment"}
    credit      GET /api/terms/{customer_id}   -> {"customer_id","terms","limit","available","currency",
                                                   "hold","hold_reason"}
    both        GET /health -> {"ok": true}, at once; an unknown id -> 404 {"error": "no such customer"}
    crm         POST /api/calls (wrap-ups, by Idempotency-Key), POST /admin/down, record pages
                (screenpop/demo/crm.py; no simulated latency)

Each answer waits a jittered latency like a real back office (accounting 20-90 ms, credit 40-150 ms),
multiplied by --latency-scale (0 answers at once). SIGTERM or SIGINT stops the server cleanly. With
--parent-pid the server also stops when that process is gone, so a crashed test leaves no orphan.
(Sales has no server: it is the SQLite file that screenpop's sql connector reads.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
from collections.abc import Callable
from typing import Any

from aiohttp import web

from screenpop.demo import data
from screenpop.demo.crm import make_crm_app

LATENCY_MS = {"accounting": (20.0, 90.0), "credit": (40.0, 150.0)}
_ROUTES: dict[str, tuple[str, Callable[[str], dict[str, Any] | None]]] = {
    "accounting": ("/api/balance/{customer_id}", data.accounting_facts),
    "credit": ("/api/terms/{customer_id}", data.credit_facts),
}
_PARENT_POLL_S = 1.0


def make_app(kind: str, latency_scale: float = 1.0, rng: random.Random | None = None) -> web.Application:
    """The aiohttp application of one back office: `accounting`, `credit` or `crm`."""
    if kind == "crm":
        return make_crm_app()
    if kind not in _ROUTES:
        raise ValueError(f"unknown backend {kind!r}; expected one of {sorted(_ROUTES)}")
    if latency_scale < 0:
        raise ValueError(f"latency_scale must be >= 0, got {latency_scale}")
    route, facts = _ROUTES[kind]
    low, high = LATENCY_MS[kind]
    jitter = rng or random.Random()

    async def answer(request: web.Request) -> web.Response:
        if latency_scale:
            await asyncio.sleep(jitter.uniform(low, high) * latency_scale / 1000)
        found = facts(request.match_info["customer_id"])
        if found is None:
            return web.json_response({"error": "no such customer"}, status=404)
        return web.json_response(found)

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get(route, answer)
    app.router.add_get("/health", health)
    return app


def _parent_gone(parent_pid: int | None) -> bool:
    return parent_pid is not None and os.getppid() != parent_pid


async def serve(kind: str, host: str, port: int, latency_scale: float = 1.0, parent_pid: int | None = None) -> None:
    """Serve one back office until SIGTERM/SIGINT (or until `parent_pid` is gone)."""
    data.sample_data()  # build the data before the first request
    runner = web.AppRunner(make_app(kind, latency_scale), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port
        print(f"{kind} listening on http://{host}:{bound}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        while not stop.is_set() and not _parent_gone(parent_pid):
            try:
                await asyncio.wait_for(stop.wait(), _PARENT_POLL_S)
            except TimeoutError:
                pass
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Command line entry: parse the arguments and serve."""
    parser = argparse.ArgumentParser(prog="python -m screenpop.demo.backends", description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted([*_ROUTES, "crm"]))
    parser.add_argument("--port", type=int, required=True, help="TCP port (0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--latency-scale", type=float, default=1.0, help="multiplies the simulated latency")
    parser.add_argument("--parent-pid", type=int, default=None, help="stop when this process is gone")
    args = parser.parse_args(argv)
    if args.latency_scale < 0:
        parser.error("--latency-scale must be >= 0")
    try:
        asyncio.run(serve(args.kind, args.host, args.port, args.latency_scale, args.parent_pid))
    except OSError as err:
        print(f"{args.kind}: cannot listen on {args.host}:{args.port}: {err.strerror or err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
