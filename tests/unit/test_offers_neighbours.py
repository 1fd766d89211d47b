"""Item neighbours (connectors.offers_neighbours) against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from connectors.offers_neighbours import neighbours

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
