"""A cost measure that machine noise does not move: Python function calls per call, screenpop and the floor.

    python -m bench.count [--calls 400] [--top 25]

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

from bench.harness import ACTIVE, QUICK, Bench, Target, agent_ids


class CountingBench(Bench):
    """Starts screenpop and the floor through bench.profiled."""

    def __init__(self, out_dir: Path) -> None:
        super().__init__(QUICK, quick=True)
        self.out_dir = out_dir

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None,  # type: ignore[override]
              cwd: Path | None = None):
        if name in ("screenpop", "floor"):
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
    args = p.parse_args()
    out_dir = Path(tempfile.mkdtemp(prefix="screenpop-count-"))
    totals = {}
    for what in ("floor", "screenpop"):
        stats = measure(what, args.calls, out_dir)
        by: collections.Counter[str] = collections.Counter()
        for (file, _line, _fn), (_cc, nc, _tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
            by[where(file)] += nc
        totals[what] = sum(by.values()) / args.calls
        print(f"{what}: {totals[what]:.0f} Python function calls per call")
        for name, n in by.most_common(args.top):
            print(f"  {n / args.calls:8.1f}  {name}")
    print(f"ratio screenpop / floor: {totals['screenpop'] / totals['floor']:.2f} (profiles in {out_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
