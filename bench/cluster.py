"""The cluster scenario: two `screenpop serve` behind HAProxy, every event round-robin, against one instance
and against the floor, in the same run (bench/README.md, scenario 8).

Three sides, each started fresh, each with 50 active and 1,000 idle agent sockets, 100 calls/s, and two
references:

- **cluster**: two instances on one Redis (`BENCH_REDIS_URL`, a unique prefix), behind HAProxy rendered from
  docs/deploy/haproxy.cfg (bench/balancer.py). Every webhook goes through HAProxy, so a call's `ringing`
  and `ended` land where round-robin puts them; the agent sockets too (connections alternate: half the
  active and half the idle agents on each instance; checked on HAProxy's admin socket).
- **one instance**: one `screenpop serve`, in-process bus, webhooks and sockets on it (scenario 3's shape).
- **floor**: two floor processes with a Redis hop (every card one PUBLISH, delivered by whichever holds the
  agent's socket), behind their own HAProxy from the same template, webhooks and sockets through it.

- **one floor process** (a reference, not a target): the floor alone, no Redis, webhooks and sockets on it.
  Floor pair / one floor process is what splitting the least a screen pop must do over two processes with
  one Redis hop per card costs on this machine: the pair's own ratio cannot be expected below it.

A call is a `ringing` then, once its card is complete, an `ended`: at 100 calls/s the two alternate, so
round-robin sends nearly every `ringing` to one instance and every `ended` to the other (`ringing_on`):
one instance runs the lookups, the other ends the calls from the shared store, the costliest split.

Segments alternate floor, one floor process, one instance, cluster, then the other way round,
... each the same number of calls. CPU per call is the server processes' (both instances; both floor
processes); each HAProxy's CPU is reported on its own.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.request
from typing import Any

from bench.balancer import Balancer
from bench.harness import ACTIVE, IDLE, Bench, Target, agent_ids, stats

NAME = "cluster: two instances behind HAProxy, events round-robin, 100 calls/s"
RATE = 100
SIDES = ("floor", "floor_one", "one_instance", "screenpop")  # screenpop = the pair behind HAProxy
FLOOR_ONE = "floor_one"  # one floor process, no Redis


def live_calls(port: int) -> int | None:
    """The lookups an instance still runs, as its /healthz says (None when it does not say): 0 once idle."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            calls = json.loads(r.read()).get("lookups")
    except OSError:
        return None
    return calls if isinstance(calls, int) else None


def start_sides(bench: Bench) -> tuple[dict[str, Target], dict[str, Any]]:
    """Start the sides and the floor reference, connect their sockets, warm them up; the targets and what was
    checked."""
    redis = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    tag = f"bench-cluster-{os.getpid()}-{secrets.token_hex(3)}"
    one, one_port = bench.start_screenpop("one-instance")
    sa, sa_port = bench.start_screenpop("cluster-a", redis, tag)
    sb, sb_port = bench.start_screenpop("cluster-b", redis, tag)
    fa, fa_port = bench.start_floor("cluster-floor-a", redis, tag + "-floor")
    fb, fb_port = bench.start_floor("cluster-floor-b", redis, tag + "-floor")
    fo, fo_port = bench.start_floor("floor-one")
    balancers = {"screenpop": Balancer("haproxy", bench.log_dir, [sa_port, sb_port]),
                 "floor": Balancer("haproxy-floor", bench.log_dir, [fa_port, fb_port])}
    for b in balancers.values():
        bench.procs.append(b.proc)
        b.wait_ready()
    targets = {
        "floor": Target("cluster-floor", [fa, fb], f"{balancers['floor'].url}/telephony/webhook",
                        balancers["floor"].proc),
        "one_instance": Target("one-instance", [one], f"http://127.0.0.1:{one_port}/telephony/webhook"),
        FLOOR_ONE: Target("floor-one", [fo], f"http://127.0.0.1:{fo_port}/telephony/webhook"),
        "screenpop": Target("cluster", [sa, sb], f"{balancers['screenpop'].url}/telephony/webhook",
                            balancers["screenpop"].proc),
    }
    ws_ports = {"floor": balancers["floor"].port, "one_instance": one_port, "screenpop": balancers["screenpop"].port,
                FLOOR_ONE: fo_port}
    for key, target in targets.items():
        bench.connect(target, ws_ports[key], agent_ids(1, ACTIVE), active=True)
        bench.connect(target, ws_ports[key], agent_ids(ACTIVE + 1, IDLE), active=False)
    checked = {"sockets_per_instance": balancers["screenpop"].connections(),
               "floor_sockets_per_instance": balancers["floor"].connections(),
               "instance_ports": [sa_port, sb_port], "one_instance_port": one_port}
    for target in targets.values():
        bench.segment(target, RATE, calls=100, record=False)  # warm up: pools, imports, caches of code
    print(f"  cluster: pids {sa.pid}, {sb.pid} behind HAProxy {balancers['screenpop'].proc.pid}; one instance "
          f"{one.pid}; floor {fa.pid}, {fb.pid} behind HAProxy {balancers['floor'].proc.pid}; agent sockets per "
          f"instance {checked['sockets_per_instance']}", flush=True)
    return targets, checked


def run_cluster(bench: Bench, rounds: int, seconds: float) -> dict[str, Any]:
    """Run the scenario; append it to bench.scenarios and return it."""

    targets, checked = start_sides(bench)
    merged: dict[str, dict[str, Any]] = {k: {"complete": [], "cpu": 0.0, "haproxy": 0.0, "lag": 0.0, "errors": 0,
                                             "ringing_on": {}, "split": 0, "routed": 0} for k in SIDES}
    segments: list[dict[str, Any]] = []
    for r in range(rounds):
        for key in SIDES if r % 2 == 0 else SIDES[::-1]:
            res = bench.segment(targets[key], RATE, calls=round(RATE * seconds))
            seg = stats(res["complete_ms"], res["cpu_s"])
            segments.append({"round": r + 1, "side": key, "cpu_us_per_call": round(res["cpu_s"] / seg["calls"] * 1e6),
                             "p50_ms": seg["p50_ms"], "p99_ms": seg["p99_ms"], "lost": seg["lost"],
                             "loadavg_1m": round(os.getloadavg()[0], 2)})
            m = merged[key]
            m["complete"] += res["complete_ms"]
            m["cpu"] += res["cpu_s"]
            m["haproxy"] += res.get("cpu_s_balancer", 0.0)
            m["lag"] = max(m["lag"], res["lag_p99_ms"])
            m["errors"] += res["error_count"]
            m["split"] += res["split_calls"]
            m["routed"] += res["routed_calls"]
            for server, n in res["ringing_on"].items():
                m["ringing_on"][server] = m["ringing_on"].get(server, 0) + n
    time.sleep(1.0)  # the last `ended` webhooks are applied
    out: dict[str, Any] = {"name": NAME}
    for key, m in merged.items():
        s = stats(m["complete"], m["cpu"])
        s["cpu_us_per_call"] = round(m["cpu"] / max(1, s["calls"]) * 1e6, 1)
        if key not in ("one_instance", FLOOR_ONE):
            s["cpu_s_haproxy"] = round(m["haproxy"], 2)
            s["haproxy_cpu_us_per_call"] = round(m["haproxy"] / max(1, s["calls"]) * 1e6, 1)
            s["ringing_on"] = m["ringing_on"]
            s["calls_split"] = m["split"]  # ringing and ended answered by different instances
            s["calls_routed"] = m["routed"]
        s["loadgen_lag_p99_ms"], s["webhook_errors"] = m["lag"], m["errors"]
        out[key] = s
        bench.samples.setdefault(NAME, {})[key] = [5000.0 if v is None else v for v in m["complete"]]
    out["screenpop"]["sockets_per_instance"] = checked["sockets_per_instance"]
    out["floor"]["sockets_per_instance"] = checked["floor_sockets_per_instance"]
    # the lookups each instance still runs once every call has ended: 0 (a call's state is in the shared store,
    # so an `ended` that lands on the other instance ends the lookup too)
    out["screenpop"]["live_calls_after"] = [live_calls(p) for p in checked["instance_ports"]]
    out["one_instance"]["live_calls_after"] = [live_calls(checked["one_instance_port"])]
    sp, one, fl, fo = out["screenpop"], out["one_instance"], out["floor"], out[FLOOR_ONE]

    def ratio(a: float, b: float) -> float:
        return round(a / b, 2) if b else float("nan")

    out["ratios"] = {
        "vs_one_instance": {"p50": ratio(sp["p50_ms"], one["p50_ms"]), "p99": ratio(sp["p99_ms"], one["p99_ms"]),
                            "cpu_per_call": ratio(sp["cpu_us_per_call"], one["cpu_us_per_call"])},
        "vs_floor": {"p50": ratio(sp["p50_ms"], fl["p50_ms"]), "p99": ratio(sp["p99_ms"], fl["p99_ms"]),
                     "cpu_per_call": ratio(sp["cpu_us_per_call"], fl["cpu_us_per_call"])},
        # the same split of the floor: two floor processes with a Redis hop against one floor process
        "floor_pair_vs_floor_one": {"cpu_per_call": ratio(fl["cpu_us_per_call"], fo["cpu_us_per_call"])},
    }
    out["ratio_p99"] = out["ratios"]["vs_floor"]["p99"]
    out["floor_kind"] = "two floor processes with a Redis hop, behind their own HAProxy (same template)"
    out["sockets"] = "through HAProxy (round-robin: half of the active and half of the idle agents on each)"
    out["rate"], out["rounds"], out["seconds_per_segment"] = RATE, rounds, seconds
    out["segments"] = segments  # in order: CPU per call and p99 of each, to judge the machine's noise
    out["target"] = "0 lost; pair CPU per call <= 1.5 x one instance's"
    bench.scenarios.append(out)
    v1, vf = out["ratios"]["vs_one_instance"], out["ratios"]["vs_floor"]
    print("  cluster segments (round side: us/call, p99 ms): " + ", ".join(
        f"{g['round']} {g['side']}: {g['cpu_us_per_call']}, {g['p99_ms']}" for g in segments), flush=True)
    print(f"  cluster: pair p50 {sp['p50_ms']} p99 {sp['p99_ms']} lost {sp['lost']} {sp['cpu_us_per_call']} us/call "
          f"(HAProxy {sp['haproxy_cpu_us_per_call']}) | one instance p50 {one['p50_ms']} p99 {one['p99_ms']} "
          f"lost {one['lost']} {one['cpu_us_per_call']} us/call | floor p50 {fl['p50_ms']} p99 {fl['p99_ms']} "
          f"lost {fl['lost']} {fl['cpu_us_per_call']} us/call | one floor process {fo['cpu_us_per_call']} us/call",
          flush=True)
    print(f"  cluster: vs one instance p50 {v1['p50']} p99 {v1['p99']} cpu {v1['cpu_per_call']} | vs floor p50 "
          f"{vf['p50']} p99 {vf['p99']} cpu {vf['cpu_per_call']} | split calls {sp['calls_split']}/"
          f"{sp['calls_routed']}, ringing on {sp['ringing_on']}, lookups running after {sp['live_calls_after']}",
          flush=True)
    print(f"  cluster: CPU per call, floor pair vs one floor process "
          f"{out['ratios']['floor_pair_vs_floor_one']['cpu_per_call']} x (the pair vs one instance: "
          f"{v1['cpu_per_call']} x)", flush=True)
    return out
