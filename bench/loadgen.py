"""The load generator: agent sockets and open-loop calls, driven by the orchestrator over stdin/stdout.

One JSON command a line on stdin, one JSON answer a line on stdout:

    {"cmd": "connect", "group": g, "url": ws_url, "agents": [ids], "active": bool}
    {"cmd": "run", "group": g, "webhook": url, "rate": calls/s, "calls": n, "numbers": "unique"|"repeat",
     "sequential": bool, "bound_s": 5, "record": bool}
    {"cmd": "close", "group": g}          {"cmd": "quit"}

Sockets are authenticated like real agents: screenpop's by logging in (sessions live on the server), the
floor's with a bearer token minted with screenpop.auth.Tokens and the session secret it checks. Calls are
offered OPEN LOOP: call i is due at t0 + i/rate whatever the
server does, and every time is counted from that due time, so a server that queues cannot hide it. Each
call is ONE signed `ringing` webhook carrying the caller and the ringing agent's extension (screenpop starts
the lookup at the first event with a number; the floor gets the identical request), then an unmeasured
`ended` once the card is complete or lost. Per call: webhook answer, first message (`call.ringing`) and card
complete (every section settled, applying `card.section` messages to the card from `call.ringing`). A call
not complete within `bound_s` is LOST: counted, and kept in the statistics at the bound. Behind HAProxy
(the cluster scenario) each answer names the instance that gave it (`X-Bench-Server`): a run reports the
ringing webhooks per instance and how many calls had their two webhooks answered by different instances.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from screenpop.auth import Tokens
from screenpop.gcpace import tune_for_serving
from telephony.generic import sign


@dataclass
class Pending:
    due: float
    answer: float | None = None
    first: float | None = None
    complete: float | None = None
    waiting: set[str] | None = None  # sections not settled yet, known from call.ringing
    early: dict[str, str] = field(default_factory=dict)  # sections seen before call.ringing
    done: asyncio.Event = field(default_factory=asyncio.Event)
    ringing_on: str | None = None  # the instance that answered each webhook, behind HAProxy
    ended_on: str | None = None


BENCH_PASSWORD = "bench"  # the agents' password in the benchmark's config (bench/harness.py: a cheap hash)


class LoadGen:
    def __init__(self, secret: str, session_secret: str) -> None:
        self.secret = secret
        self.tokens = Tokens(session_secret.encode(), 4 * 3600)
        self.calls: dict[str, Pending] = {}
        self.sockets: dict[str, list[tuple[aiohttp.ClientWebSocketResponse, asyncio.Task[None]]]] = {}
        self.active: dict[str, list[str]] = {}
        self.numbers = itertools.count()
        self.runs = itertools.count()
        self.http: aiohttp.ClientSession | None = None
        self.ws_http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=2))
        self.ws_http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def stop(self) -> None:
        for group in list(self.sockets):
            await self.close(group)
        for s in (self.http, self.ws_http):
            if s is not None:
                await s.close()

    # -- sockets ---------------------------------------------------------------------------------
    async def connect(self, group: str, url: str, agents: list[str], active: bool) -> dict[str, Any]:
        assert self.ws_http is not None
        started = time.perf_counter()
        gate = asyncio.Semaphore(32)

        async def one(agent: str) -> None:
            async with gate:
                token = await self.token(url, agent)
                ws = await self.ws_http.ws_connect(url, headers={"Authorization": f"Bearer {token}"},
                                                   timeout=aiohttp.ClientWSTimeout(ws_close=2), autoping=True,
                                                   max_msg_size=1 << 20)
                reader = asyncio.create_task(self.read(ws, active))
                self.sockets.setdefault(group, []).append((ws, reader))

        async with asyncio.timeout(120):
            await asyncio.gather(*(one(a) for a in agents))
        await asyncio.sleep(0.3)  # let the servers register the last sockets
        if active:
            self.active.setdefault(group, []).extend(agents)
        return {"connected": len(agents), "seconds": round(time.perf_counter() - started, 2)}

    async def token(self, ws_url: str, agent: str) -> str:
        """A bearer token: screenpop's sessions live on the server, so log in (BENCH_PASSWORD, a cheap hash);
        a server without /api/login (the floor) takes a token minted with the session secret."""
        assert self.ws_http is not None
        base = ws_url.replace("ws://", "http://", 1).split("/ws/", 1)[0]
        async with self.ws_http.post(f"{base}/api/login", json={"username": agent, "password": BENCH_PASSWORD}) as r:
            if r.status == 404:
                return self.tokens.issue(agent)
            r.raise_for_status()
            return str((await r.json())["token"])

    async def read(self, ws: aiohttp.ClientWebSocketResponse, active: bool) -> None:
        async for msg in ws:  # ends when the socket closes
            if active and msg.type == aiohttp.WSMsgType.TEXT:
                self.on_message(msg.data)

    def on_message(self, text: str) -> None:
        now = time.perf_counter()
        m = json.loads(text)
        kind = m.get("type")
        if kind == "call.ringing":
            card = m["call"]
            p = self.calls.get(card["call_id"])
            if p is None or p.first is not None:
                return
            p.first = now
            p.waiting = {s["name"] for s in card["sections"] if s["status"] == "pending"}
            p.waiting -= {name for name, status in p.early.items() if status != "pending"}
        elif kind == "card.section":
            p = self.calls.get(m["call_id"])
            if p is None or p.complete is not None:
                return
            if p.waiting is None:
                p.early[m["name"]] = m["status"]
                return
            if m["status"] != "pending":
                p.waiting.discard(m["name"])
        else:
            return
        if p.waiting is not None and not p.waiting and p.complete is None:
            p.complete = now
            p.done.set()

    async def close(self, group: str) -> dict[str, Any]:
        entries = self.sockets.pop(group, [])
        self.active.pop(group, None)
        for ws, reader in entries:
            reader.cancel()
            await ws.close()
        await asyncio.gather(*(r for _, r in entries), return_exceptions=True)
        return {"closed": len(entries)}

    # -- calls -----------------------------------------------------------------------------------
    def number(self, mode: str, i: int) -> str:
        if mode == "repeat":
            return f"+1650234{i % 40:04d}"  # 40 callers who call again and again
        return f"+1415{2_000_000 + next(self.numbers):07d}"  # a caller never seen before

    async def post(self, url: str, body: dict[str, Any]) -> tuple[int, str | None]:
        """POST a signed event; its status and the instance that answered (HAProxy's X-Bench-Server, if any)."""
        assert self.http is not None
        raw = json.dumps(body).encode()
        async with self.http.post(url, data=raw, headers={"Content-Type": "application/json",
                                                          "X-Screenpop-Signature": sign(raw, self.secret)}) as r:
            await r.read()
            return r.status, r.headers.get("X-Bench-Server")

    async def one_call(self, webhook: str, call_id: str, caller: str, agent_ext: str, p: Pending,
                       bound_s: float, errors: list[str]) -> None:
        try:
            status, p.ringing_on = await self.post(webhook, {"call_id": call_id, "event": "ringing",
                                                             "caller": caller, "agents": [agent_ext]})
            p.answer = time.perf_counter()
            if status != 202:
                errors.append(f"webhook answered {status}")
                return
            try:
                async with asyncio.timeout(max(0.0, p.due + bound_s - time.perf_counter())):
                    await p.done.wait()
            except TimeoutError:
                pass
            _, p.ended_on = await self.post(webhook, {"call_id": call_id, "event": "ended", "caller": caller})
        except (aiohttp.ClientError, OSError) as err:
            errors.append(f"webhook failed: {type(err).__name__}")

    async def run(self, group: str, webhook: str, rate: float, calls: int, numbers: str = "unique",
                  sequential: bool = False, bound_s: float = 5.0, record: bool = True) -> dict[str, Any]:
        agents = self.active[group]
        run_id = next(self.runs)
        errors: list[str] = []
        tasks: list[asyncio.Task[None]] = []
        records: list[Pending] = []
        lag: list[float] = []
        t0 = time.perf_counter() + 0.05
        for i in range(calls):
            if sequential:
                due = time.perf_counter()
            else:
                due = t0 + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            lag.append(time.perf_counter() - due)
            call_id = f"{group}-{run_id}-{i}"
            p = self.calls[call_id] = Pending(due=due)
            agent = agents[i % len(agents)]
            ext = str(1000 + int(agent[1:]))
            task = asyncio.create_task(self.one_call(webhook, call_id, self.number(numbers, i), ext, p,
                                                     bound_s, errors))
            tasks.append(task)
            records.append(p)
            if sequential:
                await task
        async with asyncio.timeout(bound_s + 30):  # every call ends by its bound; the ended POSTs may lag
            await asyncio.gather(*tasks, return_exceptions=True)
        for i in range(calls):
            self.calls.pop(f"{group}-{run_id}-{i}", None)
        if not record:
            return {"calls": calls}

        def ms(t: float | None, due: float) -> float | None:
            return None if t is None or t - due > bound_s else round((t - due) * 1000, 3)

        lag.sort()
        ringing_on: dict[str, int] = {}
        for p in records:
            if p.ringing_on is not None:
                ringing_on[p.ringing_on] = ringing_on.get(p.ringing_on, 0) + 1
        routed = [p for p in records if p.ringing_on is not None and p.ended_on is not None]
        return {
            "calls": calls,
            "answer_ms": [ms(p.answer, p.due) for p in records],
            "first_ms": [ms(p.first, p.due) for p in records],
            "complete_ms": [ms(p.complete, p.due) for p in records],
            "errors": errors[:5],
            "error_count": len(errors),
            "ringing_on": ringing_on,  # behind HAProxy: ringing webhooks by instance
            "split_calls": sum(p.ringing_on != p.ended_on for p in routed),  # ringing and ended on different ones
            "routed_calls": len(routed),
            "lag_p99_ms": round(lag[min(len(lag) - 1, int(len(lag) * 0.99))] * 1000, 3) if lag else 0.0,
        }


async def main() -> None:
    tune_for_serving()
    secret, session_secret = sys.argv[1], sys.argv[2]
    gen = LoadGen(secret, session_secret)
    await gen.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := await reader.readline():
            command = json.loads(line)
            cmd = command.pop("cmd")
            if cmd == "quit":
                break
            try:
                result = await getattr(gen, cmd)(**command)
                if cmd == "connect":  # the sockets live for the run: keep them out of later collections,
                    gc.collect()  # so the instrument's own pauses do not show up in anyone's latency
                    gc.freeze()
            except Exception as err:  # reported to the orchestrator, which stops the run
                result = {"error": f"{cmd} failed: {type(err).__name__}: {err}"}
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()
    finally:
        await gen.stop()


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
