"""Learning the offers engine's mix from the sales themselves (see connectors/offers_engine.py for the score).

Each customer's last order of the training data is held out; a coordinate search over `GRID` keeps the mix
that ranks those orders best (NDCG@k). It starts from the mix that reproduces GP-TopFreq and takes a step
only when it beats the current mix by more than `z` standard errors of the per-customer difference; the mix
found is kept only if it beats GP-TopFreq by more than `z_final` of them, else the engine is GP-TopFreq (on
data too thin to learn from it does not fit noise). After the first round it also tries the due curve
learnt from half of the held-out customers (Engine.learn_curve) in place of the fixed due_factor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from connectors.offers_data import FloatArray, IntArray, Orders, split_last
from connectors.offers_engine import GP_TOPFREQ, Engine, Mix, reference_days

GRID: dict[str, tuple[float, ...]] = {
    "popularity": (1e-6, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0),
    "decay": (1.0, 0.97, 0.9, 0.8, 0.6, 0.4),
    "shrink": (0.0, 0.5, 1.0, 2.0, 5.0),
    "item_repeat": (0.0, 0.5, 1.0, 2.0),
    "due": (0.0, 0.5, 1.0, 2.0),
    "neighbours": (0.0, 0.03, 0.1, 0.3, 1.0, 3.0),
    "recent": (0.0, 0.3, 0.6, 1.0),
    "loyalty": (0.0, 0.5, 1.0, 2.0),
    "once": (0.0, 0.5, 1.0, 2.0),
    "venture": (0.0, 0.5, 1.0, 2.0, 4.0),
}


def ndcg(top: IntArray, who: IntArray, truth_keys: IntArray, n_truth: IntArray, n_products: int) -> FloatArray:
    """NDCG@k of each list of `top` (rows: the customers `who`) against the sorted truth keys
    (customer * n_products + product); n_truth[r] is the size of row r's truth (at least 1)."""
    k = top.shape[1]
    keys = who[:, None] * n_products + top
    hit = np.isin(keys, truth_keys) & (top >= 0)
    gain = 1.0 / np.log2(np.arange(k) + 2.0)
    ideal = np.cumsum(gain)[np.minimum(n_truth, k) - 1]
    result: FloatArray = (hit * gain).sum(1) / ideal
    return result


def better(new: FloatArray, old: FloatArray, z: float) -> bool:
    """Whether the per-customer scores `new` beat `old` by more than z standard errors of the mean
    difference: a move the validation's noise could explain is not taken."""
    d = new - old
    if len(d) == 0 or d.mean() <= 0:
        return False
    return bool(d.mean() > z * d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else True


def tune(orders: Orders, k: int = 10, max_customers: int = 20000, rounds: int = 2,
         step: Callable[[], None] | None = None, seed: int = 0, z: float = 0.5, z_final: float = 1.0
         ) -> tuple[Mix, dict[str, Any]]:
    """The mix that ranks each customer's last order of `orders` best (NDCG@k), learnt from the orders
    before it (see the module docstring). The search starts from GP-TopFreq's mix and takes a step only
    when it beats the current mix by more than `z` standard errors; the mix found is returned only if it
    beats GP-TopFreq by more than `z_final` of them, else GP-TopFreq's mix (never worse on this validation).
    Returns (mix, what was found: validation NDCG of the mix and of GP-TopFreq, customers)."""
    fit_orders, held = split_last(orders)
    held_customers = np.unique(orders.order_customer[held])
    if len(held_customers) < 2:
        return GP_TOPFREQ, {"customers": int(len(held_customers))}
    who = held_customers
    if len(who) > max_customers:
        who = np.sort(np.random.default_rng(seed).choice(who, max_customers, replace=False))
    engine = Engine(fit_orders, reference_days(fit_orders))
    line_held = held[orders.line_order]
    truth = np.unique(orders.line_customer[line_held] * engine.n_p + orders.line_product[line_held])
    truth = truth[np.isin(truth // engine.n_p, who)]
    n_truth = np.bincount(np.searchsorted(who, truth // engine.n_p), minlength=len(who))
    cands = engine.candidates(who, Mix(), popular_per_customer=2 * k)
    half = np.zeros(len(who), dtype=bool)
    half[::2] = True  # the curve is learnt on half of the customers and checked with the search on all
    curve: FloatArray | None = engine.learn_curve(who[half], truth[np.isin(truth // engine.n_p, who[half])])

    def score(m: Mix) -> FloatArray:
        if step is not None:
            step()
        return ndcg(cands.top(m, k, who), who, truth, n_truth, engine.n_p)

    baseline = score(GP_TOPFREQ)
    best, best_scores = GP_TOPFREQ, baseline
    default = score(Mix())
    if better(default, baseline, z):
        best, best_scores = Mix(), default
    for r in range(rounds + 1):
        if r == 1:  # after a first search: does the learnt due curve do better than due_factor?
            engine.use_curve(curve)
            taken = False
            for due in GRID["due"][1:]:
                s = score(replace(best, due=due))
                if better(s, best_scores, z):
                    best, best_scores, taken = replace(best, due=due), s, True
            if not taken:
                engine.use_curve(None)
                curve = None
        moved = False
        for name, values in GRID.items():
            for value in values:
                if getattr(best, name) == value:
                    continue
                m = replace(best, **{name: value})
                s = score(m)
                if better(s, best_scores, z):
                    best, best_scores, moved = m, s, True
        if not moved and r >= 1:
            break
    if best != GP_TOPFREQ and not better(best_scores, baseline, z_final):
        # the steps, each past z standard errors, must add up to more than z_final ones over GP-TopFreq
        best, best_scores, curve = GP_TOPFREQ, baseline, None
    return best, {"customers": int(len(who)), "ndcg": float(best_scores.mean()),
                  "gp_topfreq_ndcg": float(baseline.mean()), "curve": curve}


def steps(rounds: int = 2) -> int:
    """How many times `tune` calls `step` at most (for a progress bar)."""
    return 2 + len(GRID["due"]) + (rounds + 1) * sum(len(v) for v in GRID.values())
