"""Slice tables of multiclass and regression models, checked against scikit-learn on each slice."""

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as m

from components.evaluation.slices import slice_metrics

K = 3


@pytest.fixture
def frame():
    rng = np.random.default_rng(4)
    n = 600
    return pd.DataFrame(
        {"sex": rng.choice(["Female", "Male"], n), "age": rng.integers(17, 90, n)}, index=np.arange(50, 50 + n)
    )


def test_multiclass_slices(frame):
    rng = np.random.default_rng(0)
    y = rng.integers(0, K, len(frame))
    logits = rng.normal(size=(len(frame), K)) + 1.5 * np.eye(K)[y]
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y[(frame["sex"] == "Male").to_numpy() & (y == 2)] = 1  # no class 2 among men: their roc_auc_ovr is undefined
    table = slice_metrics(frame, y, p, slice_columns=["sex", "age"], min_size=10, threshold=0.5, task="multiclass")
    female = (frame["sex"] == "Female").to_numpy()
    row = table["sex=Female"]
    assert list(row) == ["n", "accuracy", "f1_macro", "balanced_accuracy", "f1_weighted", "roc_auc_ovr", "log_loss"]
    assert row["n"] == female.sum()
    pred = p[female].argmax(axis=1)
    assert row["accuracy"] == pytest.approx(m.accuracy_score(y[female], pred))
    assert row["f1_macro"] == pytest.approx(m.f1_score(y[female], pred, average="macro"))
    assert row["log_loss"] == pytest.approx(m.log_loss(y[female], p[female], labels=range(K)))
    assert row["roc_auc_ovr"] == pytest.approx(m.roc_auc_score(y[female], p[female], multi_class="ovr"))
    assert table["sex=Male"]["roc_auc_ovr"] is None and table["sex=Male"]["f1_macro"] is not None
    assert sum(table[k]["n"] for k in table if k.startswith("age=")) == len(frame)


def test_regression_slices(frame):
    rng = np.random.default_rng(1)
    y = rng.normal(20, 5, len(frame))
    v = y + rng.normal(0, 1 + (frame["sex"] == "Male").to_numpy(), len(frame))  # men predicted worse
    frame = frame.assign(flag=np.where(np.arange(len(frame)) < 30, "constant", "varies"))
    y[:30] = 7.0
    table = slice_metrics(frame, y, v, slice_columns=["sex", "flag"], min_size=10, threshold=0.5, task="regression")
    male = (frame["sex"] == "Male").to_numpy()
    row = table["sex=Male"]
    assert set(row) == {"n", "mean_target", "rmse", "mae", "r2"}
    assert row["mean_target"] == pytest.approx(y[male].mean())
    assert row["rmse"] == pytest.approx(m.root_mean_squared_error(y[male], v[male]))
    assert row["mae"] == pytest.approx(m.mean_absolute_error(y[male], v[male]))
    assert row["r2"] == pytest.approx(m.r2_score(y[male], v[male]))
    assert row["rmse"] > table["sex=Female"]["rmse"]
    assert table["flag=constant"]["r2"] is None and table["flag=constant"]["mae"] > 0


def test_task_is_checked(frame):
    with pytest.raises(ValueError, match="task"):
        slice_metrics(frame, np.zeros(len(frame)), np.zeros(len(frame)), slice_columns=["sex"], min_size=1,
                      threshold=0.5, task="ranking")  # fmt: skip
