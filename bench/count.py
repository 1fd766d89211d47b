"""A cost measure that machine noise does not move: Python function calls per call, screenpop and the floor.

    python -m bench.count [--calls 400] [--top 25] [--pair]

`--pair` counts two screenpop instances on Redis behind HAProxy (the cluster scenario's layout, events
round-robin) against one instance: the calls of both processes added up, per call.

Each server runs under cProfile (bench/profiled.py), switched on only for a segment of `--calls` calls at
50 calls/s with 50 agent sockets, the same stubs and load generator as bench/run.py. Wall-clock numbers on a
shared machine move by 10-20 % from run to run; this count moves by well under 1 %, so a change that saves
a few percent shows. It counts Python-level calls (a resumed coroutine counts again; C work is not
weighed), so confirm a real gain with `make bench`.
"""

from __future__ import annotations

import argparse
import collections
import os
import pstats
import signal
import sys
import tempfile
import time
from pathlib import Path

from bench.balancer import Balancer
from bench.harness import ACTIVE, QUICK, Bench, Target, agent_ids


class CountingBench(Bench):
    """Starts screenpop and the floor through bench.profiled."""

    def __init__(self, out_dir: Path) -> None:
        super().__init__(QUICK, quick=True)
        self.out_dir = out_dir

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None,  # type: ignore[override]
              cwd: Path | None = None):
        if name in ("screenpop", "floor", "pair-a", "pair-b"):
            i = args.index("-m")
            args = [*args[:i], "-m", "bench.profiled", str(self.out_dir / f"{name}.pstats"), *args[i + 1:]]
        return super().start(name, args, env, cwd)


def measure(what: str, calls: int, out_dir: Path) -> pstats.Stats:
    bench = CountingBench(out_dir)
    try:
        bench.start_stubs()
        proc, port = bench.start_screenpop(what) if what == "screenpop" else bench.start_floor(what)
        bench.start_loadgen()
        target = Target(what, [proc], f"http://127.0.0.1:{port}/telephony/webhook")
        bench.connect(target, port, agent_ids(1, ACTIVE), active=True)
        bench.segment(target, 50, calls=200, record=False)  # warm up, unprofiled
        os.kill(proc.pid, signal.SIGUSR1)
        bench.segment(target, 50, calls=calls)
        os.kill(proc.pid, signal.SIGUSR2)
        path = out_dir / f"{what}.pstats"
        for _ in range(100):  # the server writes the file in its signal handler
            if path.exists() and path.stat().st_size > 0:
                break
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        bench.stop_all()
    return pstats.Stats(str(path))


def measure_pair(calls: int, out_dir: Path) -> pstats.Stats:
    """Two instances on Redis behind HAProxy, both profiled for the same segment; their statistics added."""
    bench = CountingBench(out_dir)
    redis = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    tag = f"bench-count-{os.getpid()}"
    try:
        bench.start_stubs()
        procs = [bench.start_screenpop(name, redis, tag) for name in ("pair-a", "pair-b")]
        balancer = Balancer("haproxy-count", bench.log_dir, [port for _p, port in procs])
        bench.procs.append(balancer.proc)
        balancer.wait_ready()
        bench.start_loadgen()
        target = Target("pair", [p for p, _port in procs], f"{balancer.url}/telephony/webhook", balancer.proc)
        bench.connect(target, balancer.port, agent_ids(1, ACTIVE), active=True)
        bench.segment(target, 50, calls=200, record=False)  # warm up, unprofiled
        for p, _port in procs:
            os.kill(p.pid, signal.SIGUSR1)
        bench.segment(target, 50, calls=calls)
        for p, _port in procs:
            os.kill(p.pid, signal.SIGUSR2)
        paths = [out_dir / f"{name}.pstats" for name in ("pair-a", "pair-b")]
        for _ in range(100):
            if all(path.exists() and path.stat().st_size > 0 for path in paths):
                break
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        bench.stop_all()
    return pstats.Stats(*(str(path) for path in paths))


def where(file: str) -> str:
    if file == "~":
        return "(built-in)"
    if "site-packages/" in file:
        return file.split("site-packages/")[1].split("/")[0]
    return str(Path(file).relative_to(Path.cwd())) if file.startswith(str(Path.cwd())) else Path(file).name


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=400, help="calls in the profiled segment")
    p.add_argument("--top", type=int, default=20, help="how many packages/modules to list")
    p.add_argument("--pair", action="store_true", help="two instances on Redis against one instance")
    args = p.parse_args()
    out_dir = Path(tempfile.mkdtemp(prefix="screenpop-count-"))
    totals = {}
    sides = ("screenpop", "pair") if args.pair else ("floor", "screenpop")
    for what in sides:
        stats = measure_pair(args.calls, out_dir) if what == "pair" else measure(what, args.calls, out_dir)
        by: collections.Counter[str] = collections.Counter()
        for (file, _line, _fn), (_cc, nc, _tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
            by[where(file)] += nc
        totals[what] = sum(by.values()) / args.calls
        print(f"{what}: {totals[what]:.0f} Python function calls per call")
        for name, n in by.most_common(args.top):
            print(f"  {n / args.calls:8.1f}  {name}")
    a, b = sides[1], sides[0]
    print(f"ratio {a} / {b}: {totals[a] / totals[b]:.2f} (profiles in {out_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
