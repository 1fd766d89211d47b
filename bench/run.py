"""The benchmark: screenpop against the floor (bench/floor.py), same stubs, same load generator, same run.

    python -m bench.run            the full run (about 6 minutes on 2 cores; always under 10)
    python -m bench.run --quick    every scenario, shortened (under two minutes)
    python -m bench.run --only cluster,two-instances    only these scenarios (see SCENARIOS); merged into
                                   the results.json already in --out, other scenarios kept

Writes bench/results.json, the table in bench/RESULTS.md and bench/latency.png (with `--only`: the
scenarios run replace their namesakes in --out's results.json; latency.png is left as it is). Every server is
a separate process on 127.0.0.1 and is stopped at the end, also on Ctrl-C or an error. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.cluster import run_cluster
from bench.harness import FULL, HERE, QUICK, SCENARIOS, Bench, to_the_end
from bench.report import merge, write_all


def main() -> int:
    p = argparse.ArgumentParser(description="screenpop against the floor, in one run")
    p.add_argument("--quick", action="store_true", help="every scenario, shortened (under two minutes)")
    p.add_argument("--out", default=str(HERE), help="where results.json, RESULTS.md and latency.png go")
    p.add_argument("--only", help=f"comma-separated scenarios, of: {', '.join(SCENARIOS)}; the results are merged "
                                  "into the results.json in --out (the other scenarios kept, latency.png not redrawn)")
    args = p.parse_args()
    only = frozenset(SCENARIOS)
    if args.only:
        only = frozenset(x.strip() for x in args.only.split(",") if x.strip())
        if unknown := only - set(SCENARIOS):
            p.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; known: {', '.join(SCENARIOS)}")
    bench = Bench(QUICK if args.quick else FULL, args.quick)
    own = {"cluster": lambda b: run_cluster(b, b.plan.cluster_rounds, b.plan.cluster_s)}
    results = to_the_end(bench, "bench", lambda: bench.run(only, own_servers=own))
    out = Path(args.out)
    if only != set(SCENARIOS) and (out / "results.json").exists():
        results = merge(json.loads((out / "results.json").read_text()), results, sorted(only))
    write_all(results, bench.samples, out, plot_it=only == set(SCENARIOS))
    drawn = f", {out / 'latency.png'}" if only == set(SCENARIOS) else ""
    print(f"bench: wrote {out / 'results.json'}, {out / 'RESULTS.md'}{drawn} in {results['seconds']} s", flush=True)
    for t in results["targets"]:
        print(f"  {'MET    ' if t['met'] else 'NOT MET'} {t['measure']}: {t['value']} (target {t['target']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
