"""Drift numbers: PSI and KS for numeric columns, new-category share and PSI for categorical ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.data.contract import ColumnRule, Contract, DriftOptions
from components.validation import drift as drift_mod
from components.validation.drift import drift_report, ks_statistic, psi


@pytest.fixture
def contract() -> Contract:
    return Contract(
        name="d",
        columns=(
            ColumnRule("x", dtype="float", nullable=True),
            ColumnRule("city", dtype="category", allowed=["a", "b", "c"]),
            ColumnRule("id", dtype="string", feature=False),
            ColumnRule("y", dtype="int", feature=False),
        ),
        target="y",
        labels=[0, 1],
        drift=DriftOptions(psi_threshold=0.2, new_category_threshold=0.05),
    )


def _frame(n: int, seed: int, shift: float = 0.0, cities=("a", "b", "c")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(shift, 1, n),
            "city": rng.choice(list(cities), n),
            "id": [f"r{i}" for i in range(n)],
            "y": rng.integers(0, 2, n),
        }
    )


def test_same_distribution_does_not_drift(contract):
    report = drift_report(_frame(2000, 0), _frame(2000, 1), contract)
    assert report["drifted"] == []
    assert set(report["columns"]) == {"x", "city", "y"}  # id is not a feature
    assert report["columns"]["x"]["psi"] < 0.05 and report["columns"]["x"]["ks"] < 0.1


def test_shifted_numeric_column_drifts(contract):
    report = drift_report(_frame(2000, 0), _frame(2000, 1, shift=1.5), contract)
    x = report["columns"]["x"]
    assert report["drifted"] == ["x"] and x["drifted"]
    assert x["psi"] > 0.2 and x["ks"] > 0.4 and x["threshold"] == 0.2


def test_new_categories_drift_and_are_named(contract):
    current = _frame(1000, 1, cities=("a", "b", "c", "zz"))
    city = drift_report(_frame(1000, 0), current, contract)["columns"]["city"]
    assert city["drifted"] and city["new_categories"] == ["zz"]
    assert city["new_category_share"] == pytest.approx((current["city"] == "zz").mean())


def test_null_rate_change_counts_as_drift(contract):
    current = _frame(2000, 1)
    current.loc[: len(current) // 2, "x"] = np.nan
    assert drift_report(_frame(2000, 0), current, contract)["columns"]["x"]["drifted"]


def test_psi_is_finite_with_empty_bins_and_ks_bounds():
    assert psi(np.array([10.0, 0.0]), np.array([0.0, 10.0])) > 1
    assert psi(np.array([5.0, 5.0]), np.array([5.0, 5.0])) == pytest.approx(0.0)
    a = np.arange(100.0)
    assert ks_statistic(a, a) == 0.0 and ks_statistic(a, a + 1000) == 1.0


def test_large_frames_are_sampled(contract, monkeypatch):
    monkeypatch.setattr(drift_mod, "MAX_ROWS", 500)
    monkeypatch.setattr(drift_mod, "KS_SAMPLE", 300)
    report = drift_report(_frame(3000, 0), _frame(3000, 1, shift=2.0), contract)
    assert report["n_current"] == 3000 and report["drifted"] == ["x"]
