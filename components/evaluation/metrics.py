"""Metrics per task (binary, multiclass, regression), a no-feature baseline, and the choice of the best candidate.

Every function takes the *encoded* target and the model's *scores* (see :mod:`components.model.tasks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from components.model.tasks import BINARY, MULTICLASS, check_task
from components.vocabulary import higher_is_better

if TYPE_CHECKING:
    from components.model.trained import TrainedModel

_CLIP = 1e-15  # probabilities are clipped to [_CLIP, 1 - _CLIP] before a logarithm, in every task
_GUESSED_BY_F1 = ("f1_macro", "f1_weighted")  # multiclass metrics whose baseline guesses (baseline_scores)


@dataclass(frozen=True)
class EvalResult:
    candidate: str
    split: str
    n_rows: int
    metrics: dict[str, float]


def _rounded(values: dict[str, float]) -> dict[str, float]:
    """Rounded to 12 digits so equal runs compare equal as text too."""
    return {k: round(float(v), 12) for k, v in values.items()}


def binary_metrics(y_true: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, float]:
    """roc_auc, pr_auc, f1, accuracy, balanced_accuracy, log_loss, brier and the threshold used."""
    from sklearn import metrics as m

    y_true = np.asarray(y_true).astype(int)
    proba = np.clip(np.asarray(proba, dtype=np.float64), _CLIP, 1 - _CLIP)
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
    return _rounded(values)


def multiclass_metrics(y_true: np.ndarray, proba: np.ndarray, n_classes: int | None = None) -> dict[str, float]:
    """accuracy, balanced_accuracy, f1_macro, f1_weighted, log_loss and roc_auc_ovr (macro one-vs-rest).

    The predicted class is the most probable one (the first on a tie). F1 averages over the classes that
    occur in the target or the predictions, as scikit-learn does; balanced accuracy over those in the
    target. ``roc_auc_ovr`` is left out when a class is absent from ``y_true``: its AUC is undefined.
    """
    from sklearn import metrics as m

    y, p = np.asarray(y_true).astype(np.int64), np.asarray(proba, dtype=np.float64)
    k = p.shape[1] if n_classes is None else n_classes
    if p.ndim != 2 or p.shape != (len(y), k):
        raise ValueError(f"multiclass scores must have shape ({len(y)}, {k}), got {p.shape}")
    pred = np.argmax(p, axis=1)
    values = {
        "accuracy": m.accuracy_score(y, pred),
        "balanced_accuracy": _balanced_accuracy(y, pred),
        "f1_macro": m.f1_score(y, pred, average="macro", zero_division=0),
        "f1_weighted": m.f1_score(y, pred, average="weighted", zero_division=0),
        # By hand rather than sklearn.log_loss, which warns on rows that do not sum to one within 1.5e-8
        # (a float32 softmax, a champion restricted to the challenger's classes); the value is the same.
        "log_loss": -np.mean(np.log(np.clip(p[np.arange(len(y)), y], _CLIP, 1 - _CLIP))),
    }
    if len(y) and np.bincount(y, minlength=k).min() > 0:
        # The macro mean of per-class AUCs is sklearn's multi_class="ovr"; called per class because the
        # multiclass form refuses rows that do not sum to one.
        values["roc_auc_ovr"] = np.mean([m.roc_auc_score(y == c, p[:, c]) for c in range(k)])
    return _rounded(values)


def _balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean recall over the classes in ``y`` (sklearn's value, without its warning about predicted classes
    that ``y`` lacks, which a slice or a resample often has)."""
    support = np.bincount(y)
    hits = np.bincount(y[pred == y], minlength=len(support))
    present = support > 0
    return float(np.mean(hits[present] / support[present]))


def regression_metrics(y_true: np.ndarray, values: np.ndarray) -> dict[str, float]:
    """rmse, mae, r2, and mape (as a fraction) only when no target is zero: it divides by the target."""
    from sklearn import metrics as m

    y, v = np.asarray(y_true, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if y.shape != v.shape or y.ndim != 1:
        raise ValueError(f"regression target {y.shape} and predictions {v.shape} must be equal 1-D shapes")
    result = {
        "rmse": m.root_mean_squared_error(y, v),
        "mae": m.mean_absolute_error(y, v),
        "r2": m.r2_score(y, v),
    }
    if len(y) and not (y == 0).any():
        result["mape"] = m.mean_absolute_percentage_error(y, v)
    return _rounded(result)


def task_metrics(
    task: str, y_enc: np.ndarray, scores: np.ndarray, *, threshold: float = 0.5, n_classes: int | None = None
) -> dict[str, float]:
    """The task's metrics (components.vocabulary.TASK_METRICS) for encoded targets and scores."""
    if check_task(task) == BINARY:
        return binary_metrics(y_enc, scores, threshold)
    if task == MULTICLASS:
        return multiclass_metrics(y_enc, scores, n_classes)
    return regression_metrics(y_enc, scores)


def baseline_scores(
    task: str,
    y_train_enc: np.ndarray,
    n_rows: int,
    n_classes: int | None = None,
    *,
    metric: str | None = None,
    seed: int = 0,
) -> np.ndarray:
    """What a model without features answers on ``n_rows`` rows: the training split's positive rate, class
    frequencies or mean target.

    Multiclass F1 (``metric`` f1_macro or f1_weighted) is the exception: always answering the most frequent
    class scores about 1/k of that class's F1, so guessing at random would beat it. Its baseline guesses
    instead, each row a class drawn (seeded) from the training frequencies, as scikit-learn's "stratified"
    dummy does: half the frequencies plus half a one-hot of the drawn class, so the drawn class is the answer.
    """
    y = np.asarray(y_train_enc)
    if len(y) == 0:
        raise ValueError("the baseline needs a non-empty training target")
    if check_task(task) == MULTICLASS:
        k = int(y.max()) + 1 if n_classes is None else n_classes
        frequencies = np.bincount(y.astype(np.int64), minlength=k) / len(y)
        scores = np.tile(frequencies, (n_rows, 1))
        if metric in _GUESSED_BY_F1:
            drawn = np.random.default_rng(seed).choice(k, size=n_rows, p=frequencies)
            scores = 0.5 * scores + 0.5 * np.eye(k)[drawn]
        return scores
    return np.full(n_rows, float(np.mean(y.astype(np.float64))))


def evaluate(model: TrainedModel, frame: pd.DataFrame, target: str, split: str) -> EvalResult:
    """``model``'s metrics on ``frame`` (features plus the ``target`` column), for its task."""
    y = model.encode_target(frame[target], what=f"{split} target '{target}'")
    scores = model.predict_scores(frame.drop(columns=[target]))
    n_classes = len(model.classes) if model.task == MULTICLASS else None
    metrics = task_metrics(model.task, y, scores, threshold=model.threshold, n_classes=n_classes)
    return EvalResult(model.name, split, len(frame), metrics)


def choose_best(results: list[EvalResult], metric: str) -> EvalResult:
    """Best candidate by ``metric``; ties go to the first in params order (stable, deterministic)."""
    if not results:
        raise ValueError("no candidates to choose from: every candidate is disabled")
    lacking = [r.candidate for r in results if r.metrics.get(metric) is None]
    if lacking:  # mape with a zero target, roc_auc_ovr with a class missing from the split
        raise ValueError(f"candidate(s) {', '.join(lacking)} have no {metric} on {results[0].split}: it is undefined "
                         f"there; choose another evaluate.primary_metric")  # fmt: skip
    sign = 1 if higher_is_better(metric) else -1
    return max(results, key=lambda r: sign * r.metrics[metric])
