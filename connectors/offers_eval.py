"""The offers evaluation: leave-last-order-out, the engine against three baselines, by the same code.

For every customer with at least two orders the last order is held out (offers_data.split_last); the
engine and the baselines learn from everything else and nothing of the held-out orders, and recommend k
products per customer. With T the distinct products of the held-out order and H the hits among the k:

    Recall@k = |H| / |T|
    NDCG@k   = sum over hits at rank r (1-based) of 1 / log2(r + 1), over the same sum for min(k, |T|) hits
    PHR@k    = 1 when |H| > 0 (the share of customers with at least one hit)

each averaged over the customers. The baselines (Li et al., TOIS 2023): G-TopFreq, the k products in most
orders; P-TopFreq, the customer's own products in most of their orders (ties: the more popular); GP-TopFreq,
P-TopFreq filled up with G-TopFreq. The engine's figures are also split: `repeat` takes as truth the
held-out products the customer bought before (over the customers who re-bought something), `explore` the
products new to them (over the customers who bought something new), with the same lists of k.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from connectors.offers_data import IntArray, Orders, split_last
from connectors.offers_engine import Engine, Mix, reference_days
from connectors.offers_neighbours import top_per_row
from connectors.offers_tune import steps, tune

Metrics = dict[str, float]
BASELINES = ("G-TopFreq", "P-TopFreq", "GP-TopFreq")


def metrics(top: IntArray, who: IntArray, truth_keys: IntArray, n_products: int) -> tuple[Metrics, int]:
    """Recall, NDCG and PHR of the lists `top` (row r: customer who[r]) against the sorted truth keys
    (customer * n_products + product), averaged over the customers that have a truth; and their count."""
    k = top.shape[1]
    n_truth = np.bincount(np.searchsorted(who, truth_keys // n_products), minlength=len(who))
    rows = n_truth > 0
    if not rows.any():
        return {"recall": 0.0, "ndcg": 0.0, "phr": 0.0}, 0
    keys = who[:, None] * n_products + top
    hit = np.isin(keys, truth_keys) & (top >= 0)
    gain = 1.0 / np.log2(np.arange(k) + 2.0)
    hits = hit.sum(1)[rows]
    ideal = np.cumsum(gain)[np.minimum(n_truth[rows], k) - 1]
    return {"recall": float(np.mean(hits / n_truth[rows])),
            "ndcg": float(np.mean((hit[rows] * gain).sum(1) / ideal)),
            "phr": float(np.mean(hits > 0))}, int(rows.sum())


def _lists(who: IntArray, customer: IntArray, product: IntArray, score: np.ndarray, k: int) -> IntArray:
    """The k best-scored products of each customer of `who` (rows may repeat a key: the best one counts)."""
    position = np.searchsorted(who, customer)
    key = position * (int(product.max()) + 1 if len(product) else 1) + product
    order = np.lexsort((-score, key))
    first = order[np.r_[True, key[order][1:] != key[order][:-1]]] if len(order) else order
    best = first[top_per_row(position[first], product[first], score[first], k)]
    out = np.full((len(who), k), -1, dtype=np.int64)
    pos = position[best]
    out[pos, np.arange(len(best)) - np.searchsorted(pos, pos)] = product[best]
    return out


def baselines(engine: Engine, who: IntArray, k: int) -> dict[str, IntArray]:
    """G-TopFreq, P-TopFreq and GP-TopFreq lists for the customers `who` (sorted)."""
    popular = engine.popular
    seen = np.flatnonzero(popular > 0)  # products of the training orders only
    g = seen[np.argsort(-popular[seen], kind="stable")[:k]]
    mine = np.flatnonzero(np.isin(engine.pair_customer, who))
    own_score = engine.pair_count[mine] + 0.5 * popular[engine.pair_product[mine]]  # ties: the more popular
    p = _lists(who, engine.pair_customer[mine], engine.pair_product[mine], own_score, k)
    fill_c = np.repeat(who, len(g))
    fill_p = np.tile(g, len(who))
    gp = _lists(who, np.r_[engine.pair_customer[mine], fill_c], np.r_[engine.pair_product[mine], fill_p],
                np.r_[own_score + 2.0, popular[fill_p]], k)
    return {"G-TopFreq": np.tile(g, (len(who), 1)) if len(g) == k else _pad(g, len(who), k),
            "P-TopFreq": p, "GP-TopFreq": gp}


def _pad(g: IntArray, rows: int, k: int) -> IntArray:
    out = np.full((rows, k), -1, dtype=np.int64)
    out[:, :len(g)] = g
    return out


@dataclass
class Evaluation:
    """What `evaluate` found; `as_json()` is the command's --json answer."""

    customers: int
    k: int
    engine: Metrics
    baselines: dict[str, Metrics]
    repeat: Metrics
    explore: Metrics
    repeat_customers: int = 0
    explore_customers: int = 0
    mix: Mix = field(default_factory=Mix)
    tuning: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"customers": self.customers, "k": self.k, "engine": self.engine, "baselines": self.baselines,
                "repeat": self.repeat, "explore": self.explore}


def evaluate(orders: Orders, k: int = 10, step: Callable[[], None] | None = None) -> Evaluation:
    """Leave-last-order-out evaluation of the engine and the baselines (see the module docstring).
    `step()` is called `evaluate_steps()` times at most, as the work goes on."""
    clock = time.perf_counter()
    seconds: dict[str, float] = {}
    train, held = split_last(orders)
    who = np.unique(orders.order_customer[held])
    n_p = max(orders.n_products, 1)
    line_held = held[orders.line_order]
    truth = np.unique(orders.line_customer[line_held] * n_p + orders.line_product[line_held])
    mix, tuning = tune(train, k, step=step)
    seconds["tune"] = time.perf_counter() - clock
    engine = Engine(train, reference_days(train))
    engine.use_curve(tuning.get("curve"))
    lists = engine.candidates(who, mix, popular_per_customer=2 * k).top(mix, k, who)
    if step is not None:
        step()
    seconds["fit_and_score"] = time.perf_counter() - clock - seconds["tune"]
    engine_metrics, n = metrics(lists, who, truth, n_p)
    bought = np.isin(truth, engine.pair_key)
    repeat, n_repeat = metrics(lists, who, truth[bought], n_p)
    explore, n_explore = metrics(lists, who, truth[~bought], n_p)
    base = {name: metrics(top, who, truth, n_p)[0] for name, top in baselines(engine, who, k).items()}
    if step is not None:
        step()
    seconds["total"] = time.perf_counter() - clock
    return Evaluation(n, k, engine_metrics, base, repeat, explore, n_repeat, n_explore, mix, tuning, seconds)


def evaluate_steps() -> int:
    """How many times `evaluate` calls `step` at most."""
    return steps() + 2
