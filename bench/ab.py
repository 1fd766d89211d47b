"""Alternating A/B of two source trees on the benchmark's two-instance scenario (scenario 7 of bench/run.py).

    python -m bench.ab --base /path/to/other/tree [--new TREE] [--rounds 4] [--seconds 5] [--rate 200] [--single]

Starts the stubs, then two pairs of `screenpop serve` on Redis (`BENCH_REDIS_URL`): pair A runs from
`--base` (e.g. a `git worktree` of the commit to compare against), pair B from `--new` (this tree by
default); each pair with its own channel prefix, webhooks to its first instance, the active agents'
sockets on its second, idle sockets split, exactly as scenario 7. Then segments at `--rate` calls/s
alternate A B, B A, A B, ... for `--rounds` rounds, so a slow spell of a shared machine falls on both.
Every segment is printed (CPU of the pair per call, p50/p99 of card complete, lost), then the medians and
the best of each side; `--out` writes the lot as JSON. Both trees run with this interpreter and packages.
`--single`: one instance a side instead of a pair, on the in-process bus, webhooks and sockets on it.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import ACTIVE, FULL, IDLE, Bench, Target, agent_ids, stats, to_the_end


def run_ab(bench: Bench, base: Path, new: Path, rounds: int, seconds: float, rate: float,
           single: bool = False) -> dict[str, Any]:
    """Start both pairs (or, `single`, one instance a side on the in-process bus), warm them, run the
    alternating segments; returns every segment and the summary."""
    bench.start_stubs()
    gen = bench.start_loadgen()
    redis = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    roots = {"A": base.resolve(), "B": new.resolve()}
    pairs: dict[str, Target] = {}
    for side, root in roots.items():
        if single:  # one instance: webhooks and every socket on it, memory:// bus (scenario 3's shape)
            proc, port = bench.start_screenpop(f"screenpop-{side}", None, "bench", root)
            pairs[side] = target = Target(side, [proc], f"http://127.0.0.1:{port}/telephony/webhook")
            bench.connect(target, port, agent_ids(1, ACTIVE), active=True)
            bench.connect(target, port, agent_ids(ACTIVE + 1, IDLE), active=False)
            print(f"ab: {side} = {root}: pid {proc.pid}", flush=True)
            continue
        tag = f"ab-{side}-{os.getpid()}-{secrets.token_hex(3)}"
        first, first_port = bench.start_screenpop(f"screenpop-{side}1", redis, tag, root)
        second, second_port = bench.start_screenpop(f"screenpop-{side}2", redis, tag, root)
        pairs[side] = target = Target(side, [first, second], f"http://127.0.0.1:{first_port}/telephony/webhook")
        bench.connect(target, second_port, agent_ids(1, ACTIVE), active=True)
        bench.connect(target, first_port, agent_ids(ACTIVE + 1, IDLE // 2), active=False)
        bench.connect(target, second_port, agent_ids(ACTIVE + 1 + IDLE // 2, IDLE // 2), active=False)
        print(f"ab: {side} = {root}: pids {first.pid}, {second.pid}", flush=True)
    assert bench.stubs is not None
    print(f"ab: stubs pid {bench.stubs.pid}, loadgen pid {gen.pid}; logs in {bench.log_dir}", flush=True)
    for target in pairs.values():
        bench.segment(target, 100, calls=200, record=False)  # warm up: pools, imports, caches of code
    segments: list[dict[str, Any]] = []
    for r in range(rounds):
        for side in ("A", "B") if r % 2 == 0 else ("B", "A"):
            res = bench.segment(pairs[side], rate, seconds)
            s = stats(res["complete_ms"], res["cpu_s"])
            seg = {"round": r + 1, "side": side, "calls": s["calls"], "cpu_s": s["cpu_s"],
                   "cpu_us_per_call": round(res["cpu_s"] / s["calls"] * 1e6, 1), "p50_ms": s["p50_ms"],
                   "p99_ms": s["p99_ms"], "lost": s["lost"], "loadavg_1m": round(os.getloadavg()[0], 2)}
            segments.append(seg)
            print(f"  round {seg['round']} {side}: {seg['cpu_us_per_call']} us CPU/call ({seg['cpu_s']} s, "
                  f"{seg['calls']} calls), p50 {seg['p50_ms']} ms, p99 {seg['p99_ms']} ms, lost {seg['lost']}, "
                  f"load {seg['loadavg_1m']}", flush=True)
    summary: dict[str, Any] = {}
    for side in ("A", "B"):
        per_call = [s["cpu_us_per_call"] for s in segments if s["side"] == side]
        p99 = [s["p99_ms"] for s in segments if s["side"] == side]
        summary[side] = {"root": str(roots[side]), "cpu_us_per_call_median": round(statistics.median(per_call), 1),
                         "cpu_us_per_call_best": min(per_call), "p99_ms_median": round(statistics.median(p99), 2)}
    a, b = summary["A"], summary["B"]
    summary["B_vs_A_median"] = round(b["cpu_us_per_call_median"] / a["cpu_us_per_call_median"] - 1, 3)
    summary["B_vs_A_best"] = round(b["cpu_us_per_call_best"] / a["cpu_us_per_call_best"] - 1, 3)
    return {"rate": rate, "seconds": seconds, "rounds": rounds, "segments": segments, "summary": summary}


def main() -> int:
    p = argparse.ArgumentParser(description="alternating A/B of two source trees, two instances on Redis")
    p.add_argument("--base", required=True, help="the source tree of side A")
    p.add_argument("--new", default=str(Path(__file__).resolve().parent.parent),
                   help="the source tree of side B (default: this one)")
    p.add_argument("--rounds", type=int, default=4, help="rounds of A B / B A (default 4)")
    p.add_argument("--seconds", type=float, default=FULL.rate_s, help="seconds per segment (default 5)")
    p.add_argument("--rate", type=float, default=200, help="calls per second (default 200)")
    p.add_argument("--out", help="write the segments and the summary as JSON here")
    p.add_argument("--single", action="store_true", help="one instance a side on the in-process bus, not a pair")
    args = p.parse_args()
    bench = Bench(FULL, quick=False)
    started = time.monotonic()
    result = to_the_end(bench, "ab", lambda: run_ab(bench, Path(args.base), Path(args.new), args.rounds,
                                                   args.seconds, args.rate, args.single))
    s = result["summary"]
    what = "one instance" if args.single else "the pair"
    for side in ("A", "B"):
        print(f"ab: {side} CPU per call ({what}): median {s[side]['cpu_us_per_call_median']} us, best "
              f"{s[side]['cpu_us_per_call_best']} us; p99 median {s[side]['p99_ms_median']} ms")
    print(f"ab: B against A: median {s['B_vs_A_median']:+.1%}, best {s['B_vs_A_best']:+.1%} "
          f"({time.monotonic() - started:.0f} s)")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
