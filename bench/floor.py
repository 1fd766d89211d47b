"""The floor: the least any screen pop must do, as a reference for screenpop in the same run.

    POST /telephony/webhook  check the HMAC signature, answer 202 at once; for `ringing` (or `offered`) with a
                             number: identity GET, then the three section GETs in parallel (aiohttp, keep-alive),
                             then ONE websocket message with the whole card to each ringing agent's sockets
    GET  /ws/agent           bearer token (screenpop's own token format), then the agent's messages
    GET  /healthz            200, for HAProxy's health check (the cluster scenario)

The same logical work as screenpop's bench config (identity first, then three sections), with none of the rest:
no state machine, no per-section pushes, no snapshot memory. With `--bus redis://...` the card goes through
one Redis PUBLISH and every floor process delivers it to its own sockets: the floor with a Redis hop.

    python -m bench.floor --port 8200 --stubs http://127.0.0.1:8100 --secret S --session-secret T --agents 1050
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import hmac
import json
from urllib.parse import quote

from aiohttp import ClientSession, TCPConnector, WSMsgType, web

from screenpop.auth import Tokens
from screenpop.gcpace import tune_for_serving

SECTIONS = ("balance", "orders", "credit")


class Floor:
    def __init__(self, args: argparse.Namespace) -> None:
        self.stubs = args.stubs.rstrip("/")
        self.secret = args.secret.encode()
        self.tokens = Tokens(args.session_secret.encode(), 3600)
        self.by_ext = {str(1000 + i): f"a{i:04d}" for i in range(1, args.agents + 1)}
        self.sockets: dict[str, set[web.WebSocketResponse]] = {}
        self.bus_url, self.channel = args.bus, args.channel
        self.http: ClientSession | None = None
        self.redis = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self, app: web.Application) -> None:
        gc.freeze()  # the same garbage-collector settings as `screenpop serve` (screenpop.gcpace): a fair comparison
        self.http = ClientSession(connector=TCPConnector(limit=100))
        if self.bus_url:
            from redis.asyncio import Redis

            self.redis = Redis.from_url(self.bus_url)
            pubsub = self.redis.pubsub()
            await pubsub.subscribe(self.channel)
            self.tasks.add(asyncio.create_task(self.relay(pubsub)))

    async def stop(self, app: web.Application) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.http:
            await self.http.close()
        if self.redis is not None:
            await self.redis.aclose()

    async def webhook(self, request: web.Request) -> web.Response:
        body = await request.read()
        t, _, mac = request.headers.get("X-Screenpop-Signature", "").partition(",v1=")
        good = hmac.new(self.secret, t.removeprefix("t=").encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(good, mac):
            return web.json_response({"error": "bad signature"}, status=401)
        m = json.loads(body)
        if m["event"] in ("offered", "ringing") and m.get("agents") and m.get("caller"):
            agents = [self.by_ext.get(a, a) for a in m["agents"]]
            task = asyncio.create_task(self.pop(m["call_id"], m["caller"], agents))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return web.json_response({"accepted": 1}, status=202)

    async def get(self, path: str) -> dict:
        assert self.http is not None
        async with self.http.get(self.stubs + path) as resp:
            return await resp.json()

    async def pop(self, call_id: str, caller: str, agents: list[str]) -> None:
        customer = await self.get("/identity?phone=" + quote(caller, safe=""))
        found = await asyncio.gather(*(self.get(f"/{s}/{quote(customer['id'], safe='')}") for s in SECTIONS))
        sections = [{"name": "customer", "status": "ok", "data": customer}]
        sections += [{"name": s, "status": "ok", "data": d} for s, d in zip(SECTIONS, found, strict=True)]
        text = json.dumps({"type": "call.ringing", "call": {"call_id": call_id, "caller": caller,
                                                           "customer": customer, "sections": sections}})
        if self.redis is not None:
            await self.redis.publish(self.channel, ",".join(agents) + "\n" + text)
        else:
            await self.deliver(agents, text)

    async def relay(self, pubsub) -> None:  # noqa: ANN001 - redis PubSub
        async for m in pubsub.listen():
            if m["type"] == "message":
                head, _, text = m["data"].decode().partition("\n")
                await self.deliver(head.split(","), text)

    async def deliver(self, agents: list[str], text: str) -> None:
        for agent in agents:
            for ws in list(self.sockets.get(agent, ())):
                await ws.send_str(text)

    async def agent_socket(self, request: web.Request) -> web.WebSocketResponse:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        agent = self.tokens.check(token)
        if agent is None:
            raise web.HTTPUnauthorized()
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.setdefault(agent, set()).add(ws)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.sockets[agent].discard(ws)
        return ws


def main() -> None:
    p = argparse.ArgumentParser(description="the benchmark's reference app")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--stubs", required=True, help="base URL of bench.stubs")
    p.add_argument("--secret", required=True, help="webhook secret")
    p.add_argument("--session-secret", required=True, help="checks the agents' bearer tokens")
    p.add_argument("--agents", type=int, default=1050, help="agents a0001.. with extensions 1001..")
    p.add_argument("--bus", help="redis://... : pass cards through Redis PUB/SUB")
    p.add_argument("--channel", default="floor.cards")
    args = p.parse_args()
    tune_for_serving()  # as `screenpop serve` does
    floor = Floor(args)
    app = web.Application()
    app.router.add_post("/telephony/webhook", floor.webhook)
    app.router.add_get("/ws/agent", floor.agent_socket)
    app.router.add_get("/healthz", lambda request: web.json_response({"ok": True}))  # HAProxy's health check
    app.on_startup.append(floor.start)
    app.on_cleanup.append(floor.stop)
    try:
        import uvloop  # screenpop runs on uvicorn, which picks uvloop when installed: so does the floor
    except ImportError:
        loop = None
    else:
        loop = uvloop.new_event_loop()
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None, loop=loop)


if __name__ == "__main__":
    main()
