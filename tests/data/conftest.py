"""Shared by the contract, inference and reading tests: a small churn-like reference frame."""

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def frame() -> pd.DataFrame:
    """One column of each kind inference tells apart: an id key, ints, floats with nulls, a category, free text."""
    rng = np.random.default_rng(1)
    n = 120
    income = rng.normal(50_000, 8_000, n)
    income[:6] = np.nan
    return pd.DataFrame(
        {
            "customer_id": np.arange(1000, 1000 + n),
            "age": rng.integers(20, 70, n),
            "income": income,
            "plan": rng.choice(["basic", "pro"], n),
            "note": [f"free text {i}" for i in range(n)],
            "churn": np.array([0, 1, 1] * (n // 3)),
        }
    )
