import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from components.evaluation.slices import slice_metrics


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    n = 400
    frame = pd.DataFrame(
        {
            "age": rng.integers(17, 90, n),
            "sex": rng.choice(["Female", "Male"], n),
            "flag": rng.integers(0, 2, n),
            "x": rng.normal(size=n),
        },
        index=np.arange(1000, 1000 + n),  # a non-default index must not matter
    )
    y = rng.integers(0, 2, n)
    proba = np.clip(0.5 * y + 0.5 * rng.random(n), 0, 1)
    return frame, y, proba


def test_keys_bins_and_values(data):
    frame, y, proba = data
    table = slice_metrics(frame, y, proba, slice_columns=["age", "sex", "flag"], min_size=1, threshold=0.5)
    age_keys = [k for k in table if k.startswith("age=")]
    assert len(age_keys) == 4
    assert age_keys[0].startswith("age=[17, ") and age_keys[0].endswith(")")
    assert age_keys[-1].endswith(", 89]")  # the last bin includes the maximum
    assert sum(table[k]["n"] for k in age_keys) == len(frame)
    assert {"sex=Female", "sex=Male", "flag=0", "flag=1"} <= set(table)  # low-cardinality numbers by value

    mask = (frame["sex"] == "Female").to_numpy()
    female = table["sex=Female"]
    pred = (proba[mask] >= 0.5).astype(int)
    assert female["n"] == mask.sum()
    assert female["positive_rate"] == pytest.approx(y[mask].mean())
    assert female["accuracy"] == pytest.approx(accuracy_score(y[mask], pred))
    assert female["f1"] == pytest.approx(f1_score(y[mask], pred))
    assert female["roc_auc"] == pytest.approx(roc_auc_score(y[mask], proba[mask]))


def test_ties_in_roc_auc_match_sklearn(data):
    frame, y, proba = data
    rounded = np.round(proba, 1)
    table = slice_metrics(frame, y, rounded, slice_columns=["sex"], min_size=1, threshold=0.5)
    mask = (frame["sex"] == "Male").to_numpy()
    assert table["sex=Male"]["roc_auc"] == pytest.approx(roc_auc_score(y[mask], rounded[mask]))


def test_small_and_single_class_slices(data):
    frame, y, proba = data
    frame = frame.assign(group=np.where(np.arange(len(frame)) < 5, "tiny", "big"))
    y = y.copy()
    y[frame["sex"].to_numpy() == "Female"] = 1
    table = slice_metrics(frame, y, proba, slice_columns=["group", "sex"], min_size=10, threshold=0.5)
    assert "group=tiny" not in table and "group=big" in table
    assert table["sex=Female"]["roc_auc"] is None
    assert table["sex=Male"]["roc_auc"] is not None


def test_missing_values_are_left_out(data):
    frame, y, proba = data
    frame = frame.assign(x=frame["x"].where(np.arange(len(frame)) % 10 != 0))
    table = slice_metrics(frame, y, proba, slice_columns=["x"], min_size=1, threshold=0.5, bins=3)
    assert len(table) == 3
    assert sum(s["n"] for s in table.values()) == len(frame) - len(frame) // 10


def test_bad_input(data):
    frame, y, proba = data
    with pytest.raises(ValueError, match="nope"):
        slice_metrics(frame, y, proba, slice_columns=["nope"], min_size=1, threshold=0.5)
    with pytest.raises(ValueError, match="length"):
        slice_metrics(frame, y[:-1], proba, slice_columns=["sex"], min_size=1, threshold=0.5)
