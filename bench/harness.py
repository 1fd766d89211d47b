"""The benchmark's harness: the plan, the processes, the measured segments and the scenarios that share
one instance and one floor (`Bench`). `python -m bench.run` drives it; `bench.cluster`, `bench.ab` and
`bench.count` use it. See bench/README.md."""

from __future__ import annotations

import json
import math
import os
import platform
import secrets
import signal
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from bench.procs import LoadGenProc, Proc, free_port
from bench.report import targets
from bench.stubs import SECTIONS

HERE = Path(__file__).resolve().parent
T = TypeVar("T")
ACTIVE, IDLE = 50, 1000  # active agents get the calls; idle ones hold a socket and receive nothing
BOUND_S = 5.0  # a card not complete this long after its due time is lost
SLOW = {"balance": 50, "orders": 100, "credit": 200}


@dataclass
class Plan:
    seq_calls: int
    rate_s: float  # seconds of the 200 calls/s scenario, per round
    rounds: int  # floor and screenpop alternate: F S, then S F, ...
    ramp: list[int]
    ramp_s: float
    short_s: float  # the other scenarios, per round
    cluster_rounds: int  # the cluster scenario: floor, one instance, pair, then the other way round ...
    cluster_s: float  # ... each segment this long at 100 calls/s


FULL = Plan(seq_calls=300, rate_s=5, rounds=4, ramp=[200, 300, 400, 500, 600, 700, 800, 1000, 1200], ramp_s=4,
            short_s=3, cluster_rounds=4, cluster_s=4)
QUICK = Plan(seq_calls=50, rate_s=3, rounds=1, ramp=[200, 400, 600], ramp_s=1.5, short_s=2, cluster_rounds=1,
             cluster_s=2)
# what `--only` takes; the first six share one instance and one floor (their idle sockets stay connected)
SINGLE = ("sequential", "memory", "200-calls", "ramp", "slow-stubs", "repeat")
SCENARIOS = (*SINGLE, "two-instances", "cluster")


@dataclass
class Target:
    name: str  # the load generator's group
    procs: list[Proc]
    webhook: str
    balancer: Proc | None = None  # HAProxy in front, if any: its CPU is counted apart

    def cpu_s(self) -> float:
        return sum(p.cpu_s() for p in self.procs)


@dataclass
class Run:
    samples: dict[str, list[float | None]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def agent_ids(first: int, n: int) -> list[str]:
    return [f"a{i:04d}" for i in range(first, first + n)]


def write_config(path: Path, stubs: str, agents: int) -> bool:
    """The screenpop config: `agents` agents sharing ONE argon2 hash, identity + three http sections.
    Every connector caches for 60 s, as a deployment would (the callers of the other scenarios are all
    different, so there they only pay for storing). Returns True when screenpop knows `cache`."""
    from argon2 import PasswordHasher

    from bench.loadgen import BENCH_PASSWORD
    from screenpop.config import ConnectorConfig

    cache = "cache" in ConnectorConfig.model_fields
    extra = {"cache": {"ttl_s": 60}} if cache else {}
    # the load generator logs every agent in before the run: a cheap hash (argon2's parameters are in it)
    one_hash = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(BENCH_PASSWORD)
    config = {
        "agents": [{"id": f"a{i:04d}", "password_hash": one_hash, "extensions": [str(1000 + i)]}
                   for i in range(1, agents + 1)],
        "connectors": [
            {"name": "customers", "kind": "http", "role": "identity", "timeout_ms": 2000,
             "options": {"url": f"{stubs}/identity?phone={{phone}}"}, **extra},
            *({"name": s, "kind": "http", "role": "section", "timeout_ms": 2000,
               "options": {"url": f"{stubs}/{s}/{{customer_id}}"}, **extra} for s in SECTIONS),
        ],
        "lookup": {"deadline_ms": 3000},
    }
    path.write_text(json.dumps(config))  # JSON is YAML
    return cache


def stats(values: list[float | None], cpu_s: float, minus: float = 0.0) -> dict[str, Any]:
    """Percentiles (nearest rank) of card-complete times; a lost card counts as the bound, never dropped."""
    lost = sum(v is None for v in values)
    xs = sorted((BOUND_S * 1000 if v is None else v) - minus for v in values)

    def pct(p: float) -> float:
        return round(xs[max(0, math.ceil(p / 100 * len(xs)) - 1)], 2) if xs else float("nan")

    return {"p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99), "max_ms": round(xs[-1], 2) if xs else None,
            "lost": lost, "cpu_s": round(cpu_s, 2), "calls": len(values)}


class Bench:
    def __init__(self, plan: Plan, quick: bool) -> None:
        self.plan, self.quick = plan, quick
        self.procs: list[Proc] = []
        self.log_dir = Path(tempfile.mkdtemp(prefix="screenpop-bench-"))
        self.secret, self.session_secret = secrets.token_hex(16), secrets.token_hex(16)
        self.scenarios: list[dict[str, Any]] = []
        self.samples: dict[str, dict[str, list[float]]] = {}
        self.memory: dict[str, Any] = {}
        self.cache = False
        self.loadgen: LoadGenProc | None = None
        self.stubs: Proc | None = None

    # -- processes -------------------------------------------------------------------------------
    def start(self, name: str, args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Proc:
        proc = Proc(name, args, self.log_dir, env, cwd=cwd or HERE.parent)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            try:
                proc.stop()
            except Exception as err:  # keep stopping the others
                print(f"bench: stopping {proc.name} failed: {err}", file=sys.stderr)
        self.procs.clear()

    def start_stubs(self) -> str:
        port = free_port()
        self.stubs = self.start("stubs", [sys.executable, "-m", "bench.stubs", "--port", str(port)])
        self.stubs.wait_port(port)
        self.stubs_url = f"http://127.0.0.1:{port}"
        self.config = self.log_dir / "bench-config.yaml"
        self.cache = write_config(self.config, self.stubs_url, ACTIVE + IDLE)
        return self.stubs_url

    def set_latency(self, **ms: int) -> None:
        query = "&".join(f"{k}={v}" for k, v in ms.items())
        with urllib.request.urlopen(f"{self.stubs_url}/_latency?{query}", timeout=5) as r:
            r.read()

    def start_screenpop(self, name: str, bus: str | None = None, prefix: str = "bench",
                        root: Path | None = None) -> tuple[Proc, int]:
        """One `screenpop serve`; `root`: the source tree it runs from (this one by default)."""
        port = free_port()
        env = {"SCREENPOP_CONFIG": str(self.config), "SCREENPOP_WEBHOOK_SECRET": self.secret,
               "SCREENPOP_SESSION_SECRET": self.session_secret, "SCREENPOP_LOG_LEVEL": "WARNING",
               "SCREENPOP_BUS_URL": bus or "memory://", "SCREENPOP_BUS_PREFIX": prefix}
        proc = self.start(name, [sys.executable, "-m", "screenpop.cli", "serve", "--port", str(port)], env, root)
        proc.wait_port(port, 60, "/healthz")
        return proc, port

    def start_floor(self, name: str, bus: str | None = None, channel: str = "floor") -> tuple[Proc, int]:
        port = free_port()
        args = [sys.executable, "-m", "bench.floor", "--port", str(port), "--stubs", self.stubs_url,
                "--secret", self.secret, "--session-secret", self.session_secret, "--agents", str(ACTIVE + IDLE)]
        if bus:
            args += ["--bus", bus, "--channel", channel]
        proc = self.start(name, args)
        proc.wait_port(port, 30)
        return proc, port

    def start_loadgen(self) -> LoadGenProc:
        self.loadgen = LoadGenProc(self.log_dir, self.secret, self.session_secret)
        self.procs.append(self.loadgen)
        return self.loadgen

    # -- measuring -------------------------------------------------------------------------------
    def connect(self, target: Target, port: int, agents: list[str], active: bool) -> None:
        assert self.loadgen is not None
        self.loadgen.ask(150, cmd="connect", group=target.name, url=f"ws://127.0.0.1:{port}/ws/agent",
                         agents=agents, active=active)

    def segment(self, target: Target, rate: float, seconds: float = 0, calls: int = 0, record: bool = True,
                **opts: Any) -> dict[str, Any]:
        assert self.loadgen is not None and self.stubs is not None
        calls = calls or max(1, int(rate * seconds))
        for p in target.procs:
            p.check_alive()
        cpu0, stub0, gen0 = target.cpu_s(), self.stubs.cpu_s(), self.loadgen.cpu_s()
        bal0 = target.balancer.cpu_s() if target.balancer is not None else 0.0
        limit = calls / rate + BOUND_S + 60 if not opts.get("sequential") else calls * BOUND_S + 60
        result = self.loadgen.ask(limit, cmd="run", group=target.name, webhook=target.webhook, rate=rate,
                                  calls=calls, bound_s=BOUND_S, record=record, **opts)
        result["cpu_s"] = target.cpu_s() - cpu0
        result["cpu_s_stubs"] = self.stubs.cpu_s() - stub0
        result["cpu_s_loadgen"] = self.loadgen.cpu_s() - gen0
        if target.balancer is not None:
            result["cpu_s_balancer"] = target.balancer.cpu_s() - bal0
        time.sleep(0.3)  # the `ended` webhooks and the last messages settle
        return result

    def scenario(self, name: str, targets: dict[str, Target], rounds: int, target_text: str,
                 minus: float = 0.0, **run: Any) -> dict[str, Any]:
        """Run floor and screenpop alternately for `rounds` rounds; merge each one's samples."""
        merged: dict[str, dict[str, Any]] = {k: {"complete": [], "first": [], "answer": [], "cpu": 0.0,
                                                 "stubs": 0.0, "gen": 0.0, "lag": 0.0, "errors": 0}
                                             for k in targets}
        order = ["floor", "screenpop"]
        for r in range(rounds):
            for key in order if r % 2 == 0 else order[::-1]:
                res = self.segment(targets[key], **run)
                m = merged[key]
                m["complete"] += res["complete_ms"]
                m["first"] += res["first_ms"]
                m["answer"] += res["answer_ms"]
                m["cpu"] += res["cpu_s"]
                m["stubs"] += res["cpu_s_stubs"]
                m["gen"] += res["cpu_s_loadgen"]
                m["lag"] = max(m["lag"], res["lag_p99_ms"])
                m["errors"] += res["error_count"]
        out: dict[str, Any] = {"name": name}
        for key, m in merged.items():
            s = stats(m["complete"], m["cpu"], minus)
            s["first_message_p99_ms"] = stats(m["first"], 0)["p99_ms"]
            s["webhook_answer_p99_ms"] = stats(m["answer"], 0)["p99_ms"]
            s["cpu_s_stubs"], s["cpu_s_loadgen"] = round(m["stubs"], 2), round(m["gen"], 2)
            s["loadgen_lag_p99_ms"], s["webhook_errors"] = m["lag"], m["errors"]
            out[key] = s
            self.samples.setdefault(name, {})[key] = [BOUND_S * 1000 if v is None else v - minus
                                                      for v in m["complete"]]
        out["ratio_p99"] = round(out["screenpop"]["p99_ms"] / out["floor"]["p99_ms"], 2)
        out["target"] = target_text
        self.scenarios.append(out)
        sp, fl = out["screenpop"], out["floor"]
        print(f"  {name}: screenpop p50 {sp['p50_ms']} p99 {sp['p99_ms']} lost {sp['lost']} | floor p50 "
              f"{fl['p50_ms']} p99 {fl['p99_ms']} lost {fl['lost']} | ratio p99 {out['ratio_p99']}", flush=True)
        return out

    def ramp(self, targets: dict[str, Target]) -> dict[str, Any]:
        """Raise the rate step by step; each target stops at its first step with p99 >= 50 ms or a loss."""
        best: dict[str, int] = {}
        steps: dict[str, dict[int, dict[str, Any]]] = {k: {} for k in targets}
        alive = set(targets)
        for rate in self.plan.ramp:
            for key in ("floor", "screenpop"):
                if key not in alive:
                    continue
                res = self.segment(targets[key], rate, self.plan.ramp_s)
                s = stats(res["complete_ms"], res["cpu_s"])
                s["loadgen_lag_p99_ms"] = res["lag_p99_ms"]
                steps[key][rate] = s
                ok = s["p99_ms"] < 50 and s["lost"] == 0
                print(f"  ramp {key} {rate}/s: p99 {s['p99_ms']} lost {s['lost']} {'ok' if ok else 'stop'}",
                      flush=True)
                if ok:
                    best[key] = rate
                else:
                    alive.discard(key)
                    time.sleep(2)  # let the backlog drain before the other target runs
            if not alive:
                break
        at = best.get("screenpop", self.plan.ramp[0])
        out: dict[str, Any] = {"name": "ramp: highest rate with p99 < 50 ms"}
        for key in targets:
            s = dict(steps[key].get(at) or steps[key][max(steps[key])])
            s["max_rate"] = best.get(key, 0)
            s["steps"] = {str(r): {k: v[k] for k in ("p99_ms", "lost", "cpu_s")} for r, v in steps[key].items()}
            out[key] = s
        out["ratio_p99"] = round(out["screenpop"]["p99_ms"] / out["floor"]["p99_ms"], 2)
        out["stats_at_rate"] = at
        out["target"] = "screenpop max_rate >= 500 calls/s"
        self.scenarios.append(out)
        return out

    # -- the run ---------------------------------------------------------------------------------
    def run(self, only: frozenset[str] = frozenset(SCENARIOS),
            own_servers: Mapping[str, Callable[[Bench], object]] | None = None) -> dict[str, Any]:
        """Run the scenarios named in `only`; `own_servers`: scenarios (by name) that start servers of their
        own (the cluster scenario), run last."""
        own_servers = own_servers or {}
        load_start = os.getloadavg()
        started = time.monotonic()
        print(f"bench: logs in {self.log_dir}", flush=True)
        self.start_stubs()
        gen = self.start_loadgen()
        print(f"bench: stubs pid {self.stubs.pid if self.stubs else '?'}, loadgen pid {gen.pid}", flush=True)
        if only & set(SINGLE):
            self.run_single(only)
        if "two-instances" in only:
            self.run_two_instances()
        for name, scenario in own_servers.items():  # each starts its own servers, after the others stopped
            if name in only:
                self.stop_servers()
                scenario(self)
        return self.results(load_start, time.monotonic() - started)

    def stop_servers(self) -> None:
        """Close the load generator's sockets and stop every server (not the stubs, not the generator)."""
        assert self.loadgen is not None
        for group in ("screenpop", "floor"):
            self.loadgen.ask(60, cmd="close", group=group)
        for proc in [p for p in self.procs if p is not self.stubs and p is not self.loadgen]:
            self.stop(proc)

    def run_single(self, only: frozenset[str]) -> None:
        """Scenarios 1-6: one screenpop and one floor, webhooks and sockets on each."""
        plan, gen = self.plan, self.loadgen
        assert gen is not None
        sp, sp_port = self.start_screenpop("screenpop")
        fl, fl_port = self.start_floor("floor")
        targets = {"screenpop": Target("screenpop", [sp], f"http://127.0.0.1:{sp_port}/telephony/webhook"),
                   "floor": Target("floor", [fl], f"http://127.0.0.1:{fl_port}/telephony/webhook")}
        ports = {"screenpop": sp_port, "floor": fl_port}
        print(f"bench: screenpop pid {sp.pid}, floor pid {fl.pid}", flush=True)
        for key, t in targets.items():
            self.connect(t, ports[key], agent_ids(1, ACTIVE), active=True)
            self.segment(t, 100, calls=200, record=False)  # warm up: pools, imports, caches of code
        if "sequential" in only:
            self.scenario("sequential (one call at a time)", targets, 1, "reference only", rate=1,
                          calls=plan.seq_calls, sequential=True)
        if not only & set(SINGLE[1:]):
            return
        for key, t in targets.items():  # memory per idle socket: RSS before and after 1,000 idle sockets
            proc = t.procs[0]
            before = proc.rss_kib()
            self.connect(t, ports[key], agent_ids(ACTIVE + 1, IDLE), active=False)
            time.sleep(1.0)
            if "memory" in only:
                self.memory[key] = {"rss_before_kib": before, "rss_after_kib": proc.rss_kib(),
                                    "kib_per_socket": round((proc.rss_kib() - before) / IDLE, 2), "sockets": IDLE}
                print(f"  memory {key}: {self.memory[key]['kib_per_socket']} KiB per idle socket", flush=True)
        if "200-calls" in only:
            self.scenario(f"200 calls/s, {IDLE} idle agents", targets, plan.rounds,
                          "screenpop p99 <= 1.5 x floor p99, 0 lost", rate=200, seconds=plan.rate_s)
        if "ramp" in only:
            self.ramp(targets)
        if "slow-stubs" in only:
            self.set_latency(**SLOW)
            self.scenario("stubs 50/100/200 ms: card complete minus 200 ms", targets, plan.rounds,
                          "screenpop p99 <= 5 ms", minus=200.0, rate=200, seconds=plan.short_s)
            self.set_latency(balance=0, orders=0, credit=0)
        if "repeat" in only:
            for t in targets.values():  # the 40 repeat callers once, so a cache is warm
                self.segment(t, 100, calls=80, record=False, numbers="repeat")
            self.scenario("repeat callers, cache warm" + ("" if self.cache else " (no cache in screenpop yet)"),
                          targets, plan.rounds, "screenpop p99 <= 3 ms", rate=200, seconds=plan.short_s,
                          numbers="repeat")

    def run_two_instances(self) -> None:
        """Scenario 7: two instances on Redis, webhooks to A, the active sockets on B, idle sockets on both."""
        self.stop_servers()
        tag = f"bench-{os.getpid()}-{secrets.token_hex(3)}"
        redis = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
        sa, sa_port = self.start_screenpop("screenpop-a", redis, tag)
        sb, sb_port = self.start_screenpop("screenpop-b", redis, tag)
        fa, fa_port = self.start_floor("floor-a", redis, tag)
        fb, fb_port = self.start_floor("floor-b", redis, tag)
        pair = {"screenpop": Target("screenpop", [sa, sb], f"http://127.0.0.1:{sa_port}/telephony/webhook"),
                "floor": Target("floor", [fa, fb], f"http://127.0.0.1:{fa_port}/telephony/webhook")}
        for key, (a_port, b_port) in {"screenpop": (sa_port, sb_port), "floor": (fa_port, fb_port)}.items():
            self.connect(pair[key], b_port, agent_ids(1, ACTIVE), active=True)
            self.connect(pair[key], a_port, agent_ids(ACTIVE + 1, IDLE // 2), active=False)
            self.connect(pair[key], b_port, agent_ids(ACTIVE + 1 + IDLE // 2, IDLE // 2), active=False)
            self.segment(pair[key], 100, calls=200, record=False)
        self.scenario("two instances on Redis, 200 calls/s", pair, self.plan.rounds,
                      "screenpop p99 <= 1.5 x floor p99 (with a Redis hop), 0 lost", rate=200,
                      seconds=self.plan.rate_s)

    def results(self, load_start: tuple[float, float, float], seconds: float) -> dict[str, Any]:
        cpu = "unknown"
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        by = {s["name"].split(",")[0].split(":")[0]: s for s in self.scenarios}

        results = {
            "machine": {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
                        "python": platform.python_version(), "loadavg_start": [round(x, 2) for x in load_start],
                        "loadavg_end": [round(x, 2) for x in os.getloadavg()]},
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": "quick" if self.quick else "full",
            "seconds": round(seconds, 1),
            "method": {"bound_s": BOUND_S, "active_agents": ACTIVE, "idle_agents": IDLE,
                       "webhook": "one signed `ringing` event per call (caller + agent), then `ended`, unmeasured",
                       "latency": "card complete, from each call's scheduled send time (open loop)",
                       "cache_configured": self.cache},
            "scenarios": self.scenarios,
            "memory_per_idle_socket": self.memory,
        }
        results["targets"] = targets(results, by)
        return results


def to_the_end(bench: Bench, name: str, work: Callable[[], T]) -> T:
    """Run `work` (a command's whole measurement); SIGTERM or Ctrl-C end it with exit 130 and a RuntimeError
    with one line and exit 1; every process is stopped whatever happens."""

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        return work()
    except KeyboardInterrupt:
        print(f"{name}: interrupted; stopping every process", file=sys.stderr)
        raise SystemExit(130) from None
    except RuntimeError as err:
        print(f"{name}: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        bench.stop_all()
