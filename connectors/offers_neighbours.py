"""Which products fit which: item neighbours from the customers who bought both. Pure numpy/scipy.

    buyers(i)       customers who bought i
    both(i, j)      customers who bought i and j
    fit(i, j)       both(i, j) / sqrt((buyers(i) + 1) * (buyers(j) + 1))    (a damped cosine)

Each product keeps its `per_product` best neighbours. The products' co-purchase matrix is computed in
slices whose work is bounded, so a million order lines stay within memory.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import sparse

from connectors.offers_data import FloatArray, IntArray

NEAR_BINS = 64  # near_top's bins per row: values down to 2 ** -16 apart, the smaller all in the last
WORK_PER_SLICE = 1_000_000  # products x co-bought products computed at once (smaller slices: less memory, and faster)


def top_per_row(rows: IntArray, cols: IntArray, vals: FloatArray, m: int) -> npt.NDArray[np.int64]:
    """Indexes of the `m` largest values of each row (ties: the smaller column), rows in any order."""
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((cols, -vals, rows))
    sorted_rows = rows[order]
    first = np.searchsorted(sorted_rows, sorted_rows, side="left")
    rank = np.arange(len(order)) - first
    return order[rank < m].astype(np.int64)


def top_per_sorted_row(rows: IntArray, vals: FloatArray, m: int) -> npt.NDArray[np.int64]:
    """As top_per_row for rows already sorted (non-decreasing), with ties kept in their given order: one
    float sort instead of a three-key one (the per-customer top-k of every evaluation step)."""
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    low, high = float(vals.min()), float(vals.max())
    scaled = (vals - low) / (high - low) if high > low else np.zeros(len(vals))
    order = np.argsort(rows + 0.5 * (1.0 - scaled), kind="stable")
    return order[_rank_in_run(rows) < m].astype(np.int64)


def _rank_in_run(rows: IntArray) -> IntArray:
    """Each entry's place in its run of equal values of the sorted `rows` (0, 1, 2, ... per row)."""
    n = len(rows)
    first = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    rank: IntArray = np.arange(n, dtype=np.int64) - np.repeat(first, np.diff(np.r_[first, n]))
    return rank


def near_top(rows: IntArray, vals: FloatArray, n_rows: int, m: int) -> npt.NDArray[np.bool_]:
    """The entries that may be among their row's `m` largest (rows 0..n_rows-1, in any order, values in
    (0, 1]): each value's bin on a log scale (a quarter octave per bin) is counted per row, and an entry is
    kept when its bin is at or above the one just below the bin where the row's count reaches m. Every one
    of the m largest (ties included, and values a rounding below them) is kept; the rest are mostly
    dropped, so the sort that follows is small."""
    if len(rows) == 0:
        return np.zeros(0, dtype=bool)
    bins = np.minimum(np.floor(-4.0 * np.log2(np.maximum(vals, 1e-300))), NEAR_BINS - 1).astype(np.int64)
    bins = np.maximum(bins, 0)
    counts = np.bincount(rows * NEAR_BINS + bins, minlength=n_rows * NEAR_BINS).reshape(n_rows, NEAR_BINS)
    reached = np.cumsum(counts, axis=1) >= m
    last = np.where(reached[:, -1], np.argmax(reached, axis=1), NEAR_BINS - 1)
    keep: npt.NDArray[np.bool_] = bins <= last[rows] + 1  # one bin more: a value a rounding below the m-th
    return keep


def _top_scaled(rows: IntArray, cols: IntArray, vals: FloatArray, m: int, low: float, high: float
                ) -> npt.NDArray[np.int64]:
    """top_per_sorted_row's choice over a row-major, column-ascending slice of which these entries (in any
    order) are the ones near the top, `low` and `high` its least and greatest value: the same float key
    (values closer than its precision tie), ties to the smaller column."""
    scaled = (vals - low) / (high - low) if high > low else np.zeros(len(vals))
    order = np.lexsort((cols, rows + 0.5 * (1.0 - scaled)))
    return order[_rank_in_run(rows[order]) < m].astype(np.int64)


def slices(cost: npt.NDArray[np.float64], budget: float) -> list[tuple[int, int]]:
    """Consecutive ranges [a, b) whose summed cost stays under `budget` (a single heavier row alone)."""
    out: list[tuple[int, int]] = []
    total = np.cumsum(cost)
    a = 0
    n = len(cost)
    while a < n:
        base = total[a - 1] if a else 0.0
        b = int(np.searchsorted(total, base + budget, side="right"))
        b = max(b, a + 1)
        out.append((a, min(b, n)))
        a = b
    return out


def work(a: sparse.csr_matrix, b: sparse.csr_matrix) -> npt.NDArray[np.float64]:
    """Per row of a @ b, the entries it adds up (counted with repeats), whatever the values of `a`: what
    bounds a slice's memory (a row of weights summing to 1 still costs all of its entries)."""
    pattern = sparse.csr_matrix((np.ones(len(a.data)), a.indices, a.indptr), shape=a.shape)
    cost: npt.NDArray[np.float64] = np.asarray(pattern @ np.diff(b.indptr).astype(np.float64), dtype=np.float64)
    return cost


def neighbours(customer: IntArray, product: IntArray, n_customers: int, n_products: int,
               per_product: int = 20) -> sparse.csr_matrix:
    """The products x products fit matrix (row i: the products that fit i), `per_product` per row at most,
    from distinct (customer, product) pairs."""
    owned = sparse.csr_matrix((np.ones(len(customer)), (customer, product)), shape=(n_customers, n_products))
    owned.sum_duplicates()
    owned.data[:] = 1.0
    by_product = owned.T.tocsr()
    buyers = np.diff(by_product.indptr).astype(np.float64)
    cost = work(by_product, owned)  # per product: the products its buyers bought, counted with repeats
    rows_out: list[IntArray] = []
    cols_out: list[IntArray] = []
    vals_out: list[FloatArray] = []
    for a, b in slices(cost, WORK_PER_SLICE):
        both = by_product[a:b] @ owned
        r = np.repeat(np.arange(b - a, dtype=np.int64), np.diff(both.indptr))
        c = both.indices.astype(np.int64)
        keep = r + a != c
        r, c, v = r[keep], c[keep], both.data[keep]
        v = v / np.sqrt((buyers[r + a] + 1.0) * (buyers[c] + 1.0))
        low, high = (float(v.min()), float(v.max())) if len(v) else (0.0, 0.0)
        near = np.flatnonzero(near_top(r, v, b - a, per_product))
        r, c, v = r[near], c[near], v[near]
        best = _top_scaled(r, c, v, per_product, low, high)
        rows_out.append(r[best] + a)
        cols_out.append(c[best])
        vals_out.append(v[best])
    if not rows_out:
        return sparse.csr_matrix((n_products, n_products))
    return sparse.csr_matrix((np.concatenate(vals_out), (np.concatenate(rows_out), np.concatenate(cols_out))),
                             shape=(n_products, n_products))


def spread(profile: sparse.csr_matrix, fit: sparse.csr_matrix, owned_keys: IntArray, new_per_customer: int
           ) -> tuple[IntArray, FloatArray]:
    """profile @ fit, customer by customer in bounded slices: the entries at owned (customer, product) keys
    (key = customer * n_products + product, sorted) and each customer's `new_per_customer` best other products.
    Returns (keys sorted, values)."""
    n_products = fit.shape[1]
    cost = work(profile, fit)
    keys_out: list[IntArray] = []
    vals_out: list[FloatArray] = []
    for a, b in slices(cost, WORK_PER_SLICE):
        got = (profile[a:b] @ fit).tocoo()
        r = got.row.astype(np.int64) + a
        c = got.col.astype(np.int64)
        keys = r * n_products + c
        lo, hi = np.searchsorted(owned_keys, [a * n_products, b * n_products])
        owned = np.isin(keys, owned_keys[lo:hi])  # the owned keys of this slice's customers only
        best = top_per_row(r[~owned], c[~owned], got.data[~owned], new_per_customer)
        keys_out += [keys[owned], keys[~owned][best]]
        vals_out += [got.data[owned], got.data[~owned][best]]
    if not keys_out:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    keys = np.concatenate(keys_out)
    vals = np.concatenate(vals_out)
    order = np.argsort(keys, kind="stable")
    return keys[order], vals[order]
