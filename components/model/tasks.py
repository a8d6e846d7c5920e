"""The three learning tasks, and how a target and a model's scores look in each.

A model's *scores* are what every comparison works on, one array per set of rows:

- ``binary``: the positive class's probability, shape ``(n,)`` (``classes[1]`` is positive);
- ``multiclass``: one probability per class in ``classes`` order, shape ``(n, k)``;
- ``regression``: the predicted value, shape ``(n,)``.

A target is *encoded* the same way everywhere: 0/1 for binary, the class index for multiclass,
float64 for regression. This module ships inside every model, so it imports only numpy and pandas.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

BINARY, MULTICLASS, REGRESSION = "binary", "multiclass", "regression"
TASKS = (BINARY, MULTICLASS, REGRESSION)
CLASSIFICATION = (BINARY, MULTICLASS)


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"task {task!r} is not one of {', '.join(TASKS)}")
    return task


def is_classification(task: str) -> bool:
    return check_task(task) != REGRESSION


def encode_target(task: str, y: Any, classes: list[Any], what: str = "y") -> np.ndarray:
    """``y`` as every metric takes it; a label not in ``classes`` (or a missing value) is an error naming ``what``."""
    series = y if isinstance(y, pd.Series) else pd.Series(np.asarray(y))
    if check_task(task) == REGRESSION:
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise ValueError(
                f"{what}: the regression target needs a number on every row; row {bad[0]} holds {series.iloc[bad[0]]!r}"
            )
        return values
    codes = pd.Categorical(series, categories=list(classes)).codes.astype(np.int64)
    if (codes < 0).any():
        unseen = sorted({str(v) for v in series[codes < 0]})
        raise ValueError(f"{what} has labels not seen in training: {unseen!r} (training labels: {list(classes)!r})")
    return codes


def labels_from_scores(task: str, scores: np.ndarray, classes: list[Any], threshold: float = 0.5) -> np.ndarray:
    """The answer per row: a class label (by threshold or highest probability), or the value itself."""
    if check_task(task) == REGRESSION:
        return np.asarray(scores, dtype=np.float64)
    if task == BINARY:
        return np.where(np.asarray(scores) >= threshold, classes[1], classes[0])
    return np.asarray(classes, dtype=object)[np.argmax(scores, axis=1)]


def class_probabilities(task: str, scores: np.ndarray) -> np.ndarray:
    """Scores of a classifier as ``(n, k)`` probabilities in class order (binary: ``[1 - p, p]``)."""
    if task == BINARY:
        p = np.asarray(scores, dtype=np.float64)
        return np.column_stack([1.0 - p, p])
    if task == MULTICLASS:
        return np.asarray(scores, dtype=np.float64)
    raise ValueError("a regression model has no class probabilities")


def proba_column(label: Any) -> str:
    """The pyfunc output column holding the probability of class ``label`` (multiclass models)."""
    return f"proba_{label}"
