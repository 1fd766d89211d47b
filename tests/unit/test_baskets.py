"""The order generator (screenpop.demo.baskets): deterministic, and each customer orders on a rhythm."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import replace
from datetime import date

import pytest
from scipy.stats import gamma

from screenpop.demo.baskets import REGULARS, catalog_of, shop

START, END = date(2025, 1, 1), date(2027, 1, 1)
CUSTOMERS = [f"C{i}" for i in range(300)]


def _relative_gaps(rhythm: float) -> list[float]:
    """Every gap between two orders of a customer over that customer's mean gap (customers with 5 gaps or more)."""
    style = replace(REGULARS, orders=(20, 30), rhythm=rhythm)
    days: dict[str, list[date]] = defaultdict(list)
    for customer, _, day, _ in shop(catalog_of(200, seed=1), CUSTOMERS, START, END, style, seed=3):
        days[customer].append(day)
    out: list[float] = []
    for seen in days.values():
        gaps = [(b - a).days for a, b in zip(seen, seen[1:], strict=False)]
        if len(gaps) >= 5:
            mean = statistics.mean(gaps)
            out += [g / mean for g in gaps]
    return out


def test_the_same_arguments_give_the_same_orders() -> None:
    """Everything comes from the seed: two runs with the same arguments write the same orders."""
    catalog = catalog_of(200, seed=1)
    first = list(shop(catalog, CUSTOMERS[:50], START, END, REGULARS, seed=7))
    assert first == list(shop(catalog, CUSTOMERS[:50], START, END, REGULARS, seed=7))
    assert first != list(shop(catalog, CUSTOMERS[:50], START, END, REGULARS, seed=8))


@pytest.mark.parametrize("rhythm", [1.0, REGULARS.rhythm, 9.0])
def test_a_customers_gaps_vary_as_the_rhythm_says(rhythm: float) -> None:
    """A customer's gaps between orders vary around their mean by 1/sqrt(rhythm) (gamma gaps; 1 is exponential)."""
    gaps = _relative_gaps(rhythm)
    assert len(gaps) > 3000
    assert statistics.pstdev(gaps) == pytest.approx(1.0 / rhythm ** 0.5, abs=0.1)


@pytest.mark.parametrize("rhythm", [1.0, REGULARS.rhythm])
def test_a_next_order_soon_after_the_last_is_as_rare_as_the_rhythm_says(rhythm: float) -> None:
    """The share of gaps under a fifth of the customer's mean is the gamma's: 18 % exponential, 1 % at the default."""
    gaps = _relative_gaps(rhythm)
    expected = float(gamma(rhythm, scale=1.0 / rhythm).cdf(0.2))
    assert sum(g < 0.2 for g in gaps) / len(gaps) == pytest.approx(expected, abs=0.03)
