"""Item neighbours (connectors.offers_neighbours) against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from connectors import offers_neighbours
from connectors.offers_neighbours import near_top, neighbours, top_per_sorted_row, work

# products: 0 = x, 1 = y, 2 = z, 3 = p, 4 = q, 5 = r
# customers: 0 bought x y z, 1 bought x y, 2 bought x z, 3 bought y, 4 bought p q r (q and r tie for p)
PAIRS = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 0), (2, 2), (3, 1), (4, 3), (4, 4), (4, 5)]


def _fit(per_product: int) -> np.ndarray:
    customer = np.array([c for c, _ in PAIRS], dtype=np.int64)
    product = np.array([p for _, p in PAIRS], dtype=np.int64)
    return neighbours(customer, product, 5, 6, per_product).toarray()


def test_fit_is_the_damped_cosine() -> None:
    """fit(i, j) = customers who bought both / sqrt((buyers(i) + 1)(buyers(j) + 1)), never i with itself."""
    fit = _fit(20)
    assert fit[0, 1] == pytest.approx(2 / np.sqrt(4 * 4))  # x, y: 2 customers; 3 buyers each
    assert fit[0, 2] == pytest.approx(2 / np.sqrt(4 * 3))  # x, z: z has 2 buyers
    assert fit[1, 2] == pytest.approx(1 / np.sqrt(4 * 3))
    assert fit[3, 4] == pytest.approx(1 / 2)
    assert np.allclose(fit, fit.T) and not fit.diagonal().any()
    assert not fit[:3, 3:].any()  # no customer bought from both groups


def test_each_product_keeps_its_best_and_ties_go_to_the_smaller_product() -> None:
    """With one neighbour per product: x keeps z (0.58 over y's 0.5), p keeps q (a tie with r)."""
    fit = _fit(1)
    assert [int(np.flatnonzero(row)[0]) for row in fit] == [2, 0, 0, 4, 3, 3]
    assert (np.count_nonzero(fit, axis=1) == 1).all()


def _reference(customer: np.ndarray, product: np.ndarray, n_c: int, n_p: int, m: int) -> np.ndarray:
    """The fit matrix the plain way: the whole dense co-purchase matrix, every off-diagonal pair ranked."""
    owned = np.zeros((n_c, n_p))
    owned[customer, product] = 1.0
    both = owned.T @ owned
    buyers = owned.sum(0)
    r, c = np.nonzero(both)  # row-major, columns ascending
    off = r != c
    r, c = r[off], c[off]
    v = both[r, c] / np.sqrt((buyers[r] + 1.0) * (buyers[c] + 1.0))
    best = top_per_sorted_row(r, v, m)
    out = np.zeros((n_p, n_p))
    out[r[best], c[best]] = v[best]
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_filtered_top_equals_ranking_every_pair(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """On random baskets with many ties, the fit matrix (only the entries near each row's top sorted)
    equals the one from ranking every pair of the whole co-purchase matrix."""
    monkeypatch.setattr(offers_neighbours, "WORK_PER_SLICE", 10**12)  # one slice, as the reference
    rng = np.random.default_rng(seed)
    n_c, n_p = 60, 40
    key = np.unique(rng.integers(0, n_c, 900) * n_p + rng.zipf(1.3, 900) % n_p)
    customer, product = key // n_p, key % n_p
    for m in (1, 3, 20):
        got = neighbours(customer, product, n_c, n_p, m).toarray()
        assert np.array_equal(got, _reference(customer, product, n_c, n_p, m))
        assert (np.count_nonzero(got, axis=1) <= m).all()


def test_near_top_keeps_each_rows_best_and_drops_the_far_ones() -> None:
    """Row 0 (values 1, 0.9, 0.5, 0.01, 0.001) with m = 2 keeps 1 and 0.9 (one bin) and drops the rest, 0.5
    being more than a bin below; row 1, with fewer than m values, keeps all."""
    rows = np.array([0, 0, 0, 0, 0, 1], dtype=np.int64)
    vals = np.array([0.9, 0.01, 1.0, 0.001, 0.5, 0.001])
    keep = near_top(rows, vals, 2, 2)
    assert keep.tolist() == [True, False, True, False, False, True]


def test_work_counts_entries_whatever_the_weights() -> None:
    """A row of weights 0.1 and 0.2 over products with 3 and 1 neighbours costs 4 entries, not 0.5: the
    slices of spread are bounded by entries, whatever the weights."""
    a = sparse.csr_matrix(np.array([[0.1, 0.2], [0.0, 0.5]]))
    b = sparse.csr_matrix(np.array([[1.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]))
    assert work(a, b).tolist() == [4.0, 1.0]
