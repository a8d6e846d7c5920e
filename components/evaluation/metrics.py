"""Metrics for a binary classifier and the choice of the best candidate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.model.trained import TrainedModel
from components.vocabulary import higher_is_better


@dataclass(frozen=True)
class EvalResult:
    candidate: str
    split: str
    n_rows: int
    metrics: dict[str, float]


def binary_metrics(y_true: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, float]:
    """The standard set, rounded to 12 digits so equal runs compare equal as text too."""
    from sklearn import metrics as m

    y_true = np.asarray(y_true).astype(int)
    proba = np.clip(np.asarray(proba, dtype=np.float64), 1e-15, 1 - 1e-15)
    pred = (proba >= threshold).astype(int)
    values = {
        "roc_auc": m.roc_auc_score(y_true, proba),
        "pr_auc": m.average_precision_score(y_true, proba),
        "f1": m.f1_score(y_true, pred, zero_division=0),
        "accuracy": m.accuracy_score(y_true, pred),
        "balanced_accuracy": m.balanced_accuracy_score(y_true, pred),
        "log_loss": m.log_loss(y_true, proba, labels=[0, 1]),
        "brier": m.brier_score_loss(y_true, proba),
        "threshold": threshold,
    }
    return {k: round(float(v), 12) for k, v in values.items()}


def evaluate(model: TrainedModel, frame: pd.DataFrame, target: str, split: str) -> EvalResult:
    y = (frame[target].to_numpy() == model.classes[1]).astype(int)
    proba = model.predict_proba(frame.drop(columns=[target]))
    return EvalResult(model.name, split, len(frame), binary_metrics(y, proba, model.threshold))


def choose_best(results: list[EvalResult], metric: str) -> EvalResult:
    """Best candidate by ``metric``; ties go to the first in params order (stable, deterministic)."""
    if not results:
        raise ValueError("no candidates to choose from: every candidate is disabled")
    sign = 1 if higher_is_better(metric) else -1
    return max(results, key=lambda r: sign * r.metrics[metric])
