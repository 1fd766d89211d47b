"""The offers engine: what a customer will likely order next. Pure numpy/scipy, no I/O (ADR 0006).

The score of product i for customer u mixes what the literature found to work (Li et al., "A Next Basket
Recommendation Reality Check", TOIS 2023; Hu et al., TIFU-KNN, SIGIR 2020):

    repeat(u, i)   = own(u, i) * again(i) ** item_repeat * due(u, i) ** due * loyal(u) ** loyalty
                     * due_once(u, i) ** once                                        (i bought before)
    own(u, i)      = sum of decay ** (orders since) over u's orders with i / (the same sum over all u's
                     orders + shrink)           time-decayed personal frequency, shrunk when history is thin
    again(i)       = share of the customers who could have bought i again and did (smoothed): a durable
                     product scores near 0, a consumable near 1
    due_once(u, i) = for a product u bought once: due_factor of the days since over the product's median
                     interval among the customers who bought it again (1 when unknown or bought twice)
    loyal(u)       = share of u's order lines after their first order that re-bought a product (smoothed):
                     a customer who never re-buys gets their own history ranked below the popular products
    due(u, i)      = how due i is: the time since u last bought it over u's usual interval for it (below)
    explore(u, i)  = neighbours * sum over u's products j of own(u, j) * fit(j, i) / sum own(u, .)
                     (offers_neighbours: customers who bought j also bought i)
    popular(i)     = popularity * ((1 - recent) * share of orders with i + recent * the same over the
                     latest tenth of orders), each scaled to 1 for the most popular product

    score = repeat + (explore + popular) * (1 - loyal(u)) ** venture
                                  (a customer who rarely re-buys gets more new products, one who does fewer)

Every customer's candidates are the products they bought, their best neighbour products and the most
popular ones, so a list is always full: with no history it is the most popular products. The weights
(`Mix`) are learnt on the training data alone (connectors/offers_tune.py), and the model is then built
again on all the training data.

The usual interval of a product bought n >= 2 times is (last - first) / (n - 1) days; q = days since
last / interval; due(q) rises from 0.1 to 1 at q = 1 and slowly falls after (an overdue product is still
likely, a long-forgotten one less so). A product bought once gets the median due factor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse

from connectors.offers_data import FloatArray, IntArray, Orders
from connectors.offers_neighbours import neighbours, spread, top_per_sorted_row

DUE_AT = 0.85  # q from which a product counts as due
Q_BINS = np.array([0.0, 0.25, 0.5, 0.7, 0.85, 1.0, 1.15, 1.35, 1.7, 2.2, 3.0, 5.0, 10.0])  # bins of q (left edges)


@dataclass(frozen=True)
class Mix:
    """The weights of the score (see the module docstring)."""

    decay: float = 0.8
    shrink: float = 1.0
    item_repeat: float = 0.5
    due: float = 0.5
    neighbours: float = 0.1
    popularity: float = 0.1
    recent: float = 0.5
    loyalty: float = 0.0
    once: float = 0.0
    venture: float = 0.0


GP_TOPFREQ = Mix(decay=1.0, shrink=0.0, item_repeat=0.0, due=0.0, neighbours=0.0, popularity=1e-6, recent=0.0)


def due_factor(q: FloatArray) -> FloatArray:
    """How due a product is at q = days since last purchase / usual interval (1 at q = 1)."""
    q = np.maximum(q, 0.0)
    return np.where(q <= 1.0, 0.1 + 0.9 * q, 1.0 / (1.0 + 0.3 * (q - 1.0)))


def _scaled(x: FloatArray) -> FloatArray:
    top = float(x.max()) if len(x) else 0.0
    return x / top if top > 0 else x


class Engine:
    """The features of one set of orders, ready to score any mix for any customers."""

    def __init__(self, orders: Orders, reference: FloatArray, neighbours_per_product: int = 20,
                 new_per_customer: int = 30) -> None:
        """`reference[u]`: the day (days since 1970) at which customer u's next order is predicted."""
        self.orders = orders
        self.reference = reference
        self.new_per_customer = new_per_customer
        n_p = max(orders.n_products, 1)
        self.n_p = n_p
        start = orders.order_start()
        self.order_count = np.diff(start)
        line_customer = orders.line_customer
        age_of_order = (start[orders.order_customer + 1] - 1 - np.arange(len(orders.order_customer)))
        self.line_age = age_of_order[orders.line_order].astype(np.float64)
        key = line_customer * n_p + orders.line_product
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        first_of = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]]) if len(key) else np.zeros(0, int)
        self.pair_key: IntArray = sorted_key[first_of]
        self.pair_customer: IntArray = self.pair_key // n_p
        self.pair_product: IntArray = self.pair_key % n_p
        self.pair_of_line = np.empty(len(key), dtype=np.int64)
        self.pair_of_line[order] = np.cumsum(np.r_[True, sorted_key[1:] != sorted_key[:-1]]) - 1 if len(key) else 0
        n_pairs = len(self.pair_key)
        times = orders.order_time[orders.line_order]
        self.pair_count = np.bincount(self.pair_of_line, minlength=n_pairs).astype(np.float64)
        self.pair_first = np.full(n_pairs, np.inf)
        np.minimum.at(self.pair_first, self.pair_of_line, times)
        self.pair_last = np.full(n_pairs, -np.inf)
        np.maximum.at(self.pair_last, self.pair_of_line, times)
        oldest = np.zeros(n_pairs)
        np.maximum.at(oldest, self.pair_of_line, self.line_age)
        # again(i): of the pairs that had a later order to repeat in, the share that repeated
        could = oldest > 0
        repeated = self.pair_count >= 2
        rate = repeated.sum() / max(int(could.sum()), 1)
        self.again = ((np.bincount(self.pair_product, repeated, minlength=n_p) + 2.0 * rate)
                      / (np.bincount(self.pair_product, could, minlength=n_p) + 2.0))
        # loyal(u): the share of u's lines after their first order that re-bought something (smoothed)
        line_repeat = self.line_age < oldest[self.pair_of_line]
        line_could = self.line_age < (self.order_count[line_customer] - 1)
        chances = np.bincount(line_customer, line_could, minlength=orders.n_customers)
        share = line_repeat.sum() / max(int(line_could.sum()), 1)
        self.loyal = (np.bincount(line_customer, line_repeat, minlength=orders.n_customers) + 3.0 * share) / (
            chances + 3.0)
        # due(u, i)
        self.interval = np.where(repeated, np.maximum((self.pair_last - self.pair_first)
                                                      / np.maximum(self.pair_count - 1, 1), 1.0), np.nan)
        elapsed = np.maximum(reference[self.pair_customer] - self.pair_last, 0.0)
        self.q = np.where(repeated, elapsed / np.where(repeated, self.interval, 1.0), np.nan)
        self.repeated = repeated
        # a product bought once: how due it is by the product's median interval over all customers
        rep = np.flatnonzero(repeated)
        by = rep[np.lexsort((self.interval[rep], self.pair_product[rep]))]
        products, first, count = np.unique(self.pair_product[by], return_index=True, return_counts=True)
        typical = np.full(n_p, np.nan)
        enough = count >= 3
        typical[products[enough]] = self.interval[by][(first + count // 2)[enough]]
        once_q = elapsed / typical[self.pair_product]
        self.due_once = np.where(~repeated & np.isfinite(once_q), due_factor(np.nan_to_num(once_q)), 1.0)
        self.use_curve(None)
        # popularity, all time and over the latest tenth of orders
        order_has = np.bincount(orders.line_product, minlength=n_p).astype(np.float64)
        self.popular = _scaled(order_has)
        self.order_share = order_has / max(len(orders.order_time), 1)
        n_orders = len(orders.order_time)
        latest = orders.order_time >= np.sort(orders.order_time)[int(n_orders * 0.9)] if n_orders else orders.order_time
        recent = np.bincount(orders.line_product[latest[orders.line_order]], minlength=n_p).astype(np.float64)
        self.recent_share = recent / max(int(latest.sum()), 1)
        self.recent_popular = _scaled(recent)
        self.buyers = np.bincount(self.pair_product, minlength=n_p).astype(np.float64)
        self.fit = neighbours(self.pair_customer, self.pair_product, orders.n_customers, n_p, neighbours_per_product)
        self.fit_by_target = self.fit.tocsc()
        self.fit_by_target.sort_indices()
        self._own: dict[tuple[float, float], FloatArray] = {}

    def use_curve(self, curve: FloatArray | None) -> None:
        """Set due(u, i) from the fixed due_factor, or from a learnt curve: the value of q's bin (Q_BINS)."""
        q = np.nan_to_num(self.q)
        due = due_factor(q) if curve is None else curve[np.searchsorted(Q_BINS, q, side="right") - 1]
        neutral = float(np.median(due[self.repeated])) if self.repeated.any() else 0.5
        self.due = np.where(self.repeated, due, neutral)
        self.curve = curve

    def learn_curve(self, who: IntArray, truth_keys: IntArray) -> FloatArray:
        """The due curve from held-out orders: per bin of q, the share of the products bought two or more
        times that were in the customer's held-out order (smoothed), scaled to 1 at its highest."""
        mine = np.flatnonzero(self.repeated & np.isin(self.pair_customer, who))
        bins = np.searchsorted(Q_BINS, np.nan_to_num(self.q[mine]), side="right") - 1
        hit = np.isin(self.pair_key[mine], truth_keys).astype(np.float64)
        mean = hit.mean() if len(hit) else 0.5
        rate = (np.bincount(bins, hit, minlength=len(Q_BINS)) + 5.0 * mean) / (
            np.bincount(bins, minlength=len(Q_BINS)) + 5.0)
        curve: FloatArray = rate / max(float(rate.max()), 1e-12)
        return curve

    def own(self, decay: float, shrink: float) -> FloatArray:
        """own(u, i) of every (customer, product) pair for this decay and shrink (cached)."""
        got = self._own.get((decay, shrink))
        if got is None:
            weight = decay ** self.line_age
            num = np.bincount(self.pair_of_line, weight, minlength=len(self.pair_key))
            n = self.order_count.astype(np.float64)
            total = n if decay >= 1.0 else (1.0 - decay ** n) / (1.0 - decay)
            got = self._own[(decay, shrink)] = num / (total[self.pair_customer] + shrink)
        return got

    def candidates(self, who: IntArray, mix: Mix, popular_per_customer: int) -> Candidates:
        """Every customer of `who` (sorted, distinct) with their candidate products and features."""
        n_p = self.n_p
        in_who = np.zeros(self.orders.n_customers, dtype=bool)
        in_who[who] = True
        pairs = np.flatnonzero(in_who[self.pair_customer])
        position = np.full(self.orders.n_customers, -1, dtype=np.int64)
        position[who] = np.arange(len(who))
        own = self.own(mix.decay, 0.0)[pairs]
        totals = np.bincount(position[self.pair_customer[pairs]], own, minlength=len(who))
        profile = sparse.csr_matrix((own / np.maximum(totals[position[self.pair_customer[pairs]]], 1e-12),
                                     (position[self.pair_customer[pairs]], self.pair_product[pairs])),
                                    shape=(len(who), n_p))
        local_owned = position[self.pair_customer[pairs]] * n_p + self.pair_product[pairs]
        nb_keys, nb_vals = spread(profile, self.fit, np.sort(local_owned), self.new_per_customer)
        nb_keys = who[nb_keys // n_p] * n_p + nb_keys % n_p
        seen = np.flatnonzero(self.popular > 0)  # a product no order here holds is never a candidate
        top = np.unique(np.r_[seen[np.argsort(-self.popular[seen], kind="stable")[:popular_per_customer]],
                              seen[np.argsort(-self.recent_popular[seen], kind="stable")[:popular_per_customer]]])
        pop_keys = (who[:, None] * n_p + top[None, :]).ravel()
        keys = np.unique(np.r_[self.pair_key[pairs], nb_keys, pop_keys])
        pair = np.searchsorted(self.pair_key, keys)
        pair = np.where((pair < len(self.pair_key)) & (self.pair_key[np.minimum(pair, len(self.pair_key) - 1)]
                                                       == keys), pair, -1) if len(self.pair_key) else pair * 0 - 1
        at = np.searchsorted(nb_keys, keys)
        hit = (at < len(nb_keys)) & (nb_keys[np.minimum(at, max(len(nb_keys) - 1, 0))] == keys) if len(nb_keys) \
            else np.zeros(len(keys), dtype=bool)
        nb = np.where(hit, nb_vals[np.minimum(at, max(len(nb_keys) - 1, 0))] if len(nb_keys) else 0.0, 0.0)
        return Candidates(self, keys // n_p, keys % n_p, pair, nb)


@dataclass(frozen=True, eq=False)
class Candidates:
    """Candidate (customer, product) rows, sorted by customer then product, with their features."""

    engine: Engine
    customer: IntArray
    product: IntArray
    pair: IntArray  # index into the engine's pairs, -1 for a product new to the customer
    nb: FloatArray

    def parts(self, mix: Mix) -> tuple[FloatArray, FloatArray]:
        """(repeat part, explore + popular part) of the score of every row."""
        e = self.engine
        owned = self.pair >= 0
        p = np.maximum(self.pair, 0)
        repeat = np.where(owned, e.own(mix.decay, mix.shrink)[p] * e.again[self.product] ** mix.item_repeat
                          * e.due[p] ** mix.due * e.loyal[self.customer] ** mix.loyalty
                          * e.due_once[p] ** mix.once, 0.0)
        popular = (1.0 - mix.recent) * e.popular[self.product] + mix.recent * e.recent_popular[self.product]
        other = mix.neighbours * self.nb + mix.popularity * popular
        if mix.venture:
            other = other * (1.0 - e.loyal[self.customer]) ** mix.venture
        return repeat, other

    def top(self, mix: Mix, k: int, who: IntArray, keep: npt.NDArray[np.bool_] | None = None) -> IntArray:
        """The k best products of each customer of `who` (a len(who) x k matrix, -1 where fewer)."""
        repeat, other = self.parts(mix)
        score = repeat + other
        rows = np.arange(len(score)) if keep is None else np.flatnonzero(keep)
        position = np.searchsorted(who, self.customer[rows])
        best = top_per_sorted_row(position, score[rows], k)  # by customer, best first
        out = np.full((len(who), k), -1, dtype=np.int64)
        pos = position[best]
        rank = np.arange(len(best)) - np.searchsorted(pos, pos)
        out[pos, rank] = self.product[rows][best]
        return out


def reference_days(orders: Orders) -> FloatArray:
    """Each customer's predicted next order day: the last order plus their mean gap between orders (the
    median customer's when they have one order). Uses nothing but `orders`."""
    start = orders.order_start()
    n = np.diff(start)
    last = np.where(n > 0, orders.order_time[np.maximum(start[1:] - 1, 0)], 0.0)
    first = np.where(n > 0, orders.order_time[np.minimum(start[:-1], max(len(orders.order_time) - 1, 0))], 0.0)
    gap = np.where(n >= 2, (last - first) / np.maximum(n - 1, 1), np.nan)
    typical = float(np.nanmedian(gap)) if np.isfinite(gap).any() else 7.0
    return last + np.where(np.isfinite(gap), gap, typical)
