"""A cross-check of the offers engine: how far does a learnt ranker get on the same history?

    python -m bench.offers_ranker [--skip-big] [FILE.csv ...]

The engine's score is a hand-built mix of a few signals whose weights are learnt (connectors/offers_engine.py).
If a much richer learner, given every signal the engine computes, ranked the held-out orders clearly better,
the mix would be leaving quality on the table; if it lands where the mix does, the data's history holds no
more than the mix already takes from it. Here the learner is a gradient-boosted ranker (LightGBM's
lambdarank, 300 trees; in the bench's extras, not a dependency of screenpop) over 21 features of each
candidate (customer, product): the decayed personal frequency at five decays and shrunk, the count, the
customer's order count and loyalty, the product's repurchase rate, how due it is (q, the usual interval,
days since the first and last purchase, the due factors), popularity all time and recent, buyers, the
neighbour score, whether it is owned.

Both learn from the same thing: the training data with each customer's last training order held out (the
mix's coordinate search on it, the ranker's trees on it); both are then scored on the evaluation's split
(each customer's last order, never seen), on the engine's own candidates, against GP-TopFreq computed by
the evaluation's code. Printed: NDCG@10 of each, their ratios, and two standard errors of the per-customer
differences. Data sets: the generated ones of bench.datasets (seed 5) and Superstore, and with no
--skip-big the Complete Journey (about 5 minutes on 2 cores); or the files given.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from connectors.offers_data import FloatArray, Orders, read_orders_csv, split_last
from connectors.offers_engine import Candidates, Engine, Mix, reference_days
from connectors.offers_eval import baselines
from connectors.offers_neighbours import top_per_sorted_row
from connectors.offers_tune import ndcg, tune

K = 10
GENERATED = ("demo", "regulars", "drifting", "explorers", "mixed")
PARAMS = {"objective": "lambdarank", "learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 50,
          "bagging_fraction": 0.8, "bagging_freq": 1, "feature_fraction": 0.8, "lambdarank_truncation_level": 20,
          "eval_at": [K], "seed": 1, "deterministic": True, "num_threads": 2, "verbose": -1}


def features(cands: Candidates) -> FloatArray:
    """The candidates' features, one row each (-1 where a feature is undefined: a product not owned)."""
    e = cands.engine
    owned = cands.pair >= 0
    p = np.maximum(cands.pair, 0)
    u, i = cands.customer, cands.product

    def mine(x: FloatArray) -> FloatArray:
        return np.where(owned, x[p], -1.0)

    rep = owned & e.repeated[p]
    cols = [mine(e.own(d, 0.0)) for d in (1.0, 0.97, 0.9, 0.8, 0.6)] + [
        mine(e.own(0.9, 1.0)), mine(e.pair_count), e.order_count[u].astype(np.float64), e.again[i], e.loyal[u],
        mine(e.due), np.where(rep, np.nan_to_num(e.q[p]), -1.0), np.where(rep, np.nan_to_num(e.interval[p]), -1.0),
        np.where(owned, e.reference[u] - e.pair_last[p], -1.0), np.where(owned, e.reference[u] - e.pair_first[p], -1.0),
        mine(e.due_once), e.popular[i], e.recent_popular[i], cands.nb, owned.astype(np.float64), e.buyers[i]]
    return np.column_stack(cols)


def split(orders: Orders) -> tuple[Orders, np.ndarray, np.ndarray]:
    """(the orders before each customer's last one, the customers with a held-out order, the truth keys)."""
    before, held = split_last(orders)
    who = np.unique(orders.order_customer[held])
    n_p = max(orders.n_products, 1)
    line_held = held[orders.line_order]
    return before, who, np.unique(orders.line_customer[line_held] * n_p + orders.line_product[line_held])


def lists(cands: Candidates, who: np.ndarray, score: FloatArray) -> np.ndarray:
    """The K best candidates of each customer of `who` by `score`."""
    position = np.searchsorted(who, cands.customer)
    best = top_per_sorted_row(position, score, K)
    out = np.full((len(who), K), -1, dtype=np.int64)
    pos = position[best]
    out[pos, np.arange(len(best)) - np.searchsorted(pos, pos)] = cands.product[best]
    return out


def compare(orders: Orders) -> dict[str, float]:
    """NDCG@K of GP-TopFreq, the engine's learnt mix and the ranker on the evaluation's split, and two
    standard errors of each one's per-customer difference to GP-TopFreq (and of the ranker's to the mix)."""
    import lightgbm as lgb

    n_p = max(orders.n_products, 1)
    train, who, truth = split(orders)
    fit, who_fit, truth_fit = split(train)
    learn = Engine(fit, reference_days(fit)).candidates(who_fit, Mix(), popular_per_customer=2 * K)
    label = np.isin(learn.customer * n_p + learn.product, truth_fit).astype(np.float64)
    group = np.bincount(np.searchsorted(who_fit, learn.customer), minlength=len(who_fit))
    booster = lgb.train(PARAMS, lgb.Dataset(features(learn), label, group=group[group > 0]), num_boost_round=300)
    mix, tuning = tune(train, K)
    engine = Engine(train, reference_days(train))
    engine.use_curve(tuning.get("curve"))
    cands = engine.candidates(who, mix, popular_per_customer=2 * K)
    n_truth = np.bincount(np.searchsorted(who, truth // n_p), minlength=len(who))
    rows = n_truth > 0
    got = {name: ndcg(top[rows], who[rows], truth, n_truth[rows], n_p) for name, top in (
        ("GP-TopFreq", baselines(engine, who, K)["GP-TopFreq"]), ("mix", cands.top(mix, K, who)),
        ("ranker", lists(cands, who, booster.predict(features(cands)))))}

    def two_se(a: FloatArray, b: FloatArray) -> float:
        return float(2 * (a - b).std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else float("nan")

    gp = got["GP-TopFreq"]
    return {"customers": int(rows.sum()), **{name: float(v.mean()) for name, v in got.items()},
            "mix_se2": two_se(got["mix"], gp), "ranker_se2": two_se(got["ranker"], gp),
            "ranker_vs_mix_se2": two_se(got["ranker"], got["mix"])}


def row(name: str, r: dict[str, float]) -> str:
    """One Markdown table row of `compare`'s answer (ratios with their two standard errors)."""
    gp, mix, ranker = r["GP-TopFreq"], r["mix"], r["ranker"]
    ratio = (lambda a, b, se: f"{a / b:.3f} ± {se / b:.3f}") if gp > 0 else (lambda a, b, se: "-")
    return (f"| {name} | {r['customers']:,} | {gp:.4f} | {mix:.4f} | {ranker:.4f} | {ratio(mix, gp, r['mix_se2'])} "
            f"| {ratio(ranker, gp, r['ranker_se2'])} | {ratio(ranker, mix, r['ranker_vs_mix_se2'])} |")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.offers_ranker", description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help="evaluation CSVs (default: the bench's data sets)")
    parser.add_argument("--skip-big", action="store_true", help="leave out the Complete Journey")
    args = parser.parse_args(argv)
    print("| data set | customers | GP-TopFreq | mix | ranker | mix / GP | ranker / GP | ranker / mix |")
    print("|---|---|---|---|---|---|---|---|")
    if args.files:
        sets = [(f.name, f) for f in args.files]
    else:
        from bench.datasets import completejourney, generated, superstore
        tmp = Path(tempfile.mkdtemp(prefix="offers-ranker-"))
        sets = [] if args.skip_big else [("Complete Journey", completejourney())]
        sets.append(("Superstore", superstore()))
        for kind in GENERATED:
            generated(kind, tmp / f"{kind}.csv")
            sets.append((f"generated: {kind}", tmp / f"{kind}.csv"))
    for name, path in sets:
        print(row(name, compare(read_orders_csv(path))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
