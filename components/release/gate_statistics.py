"""The gate's statistics: a paired bootstrap of one metric's difference, and McNemar's test.

Pure functions over arrays of labels and scores (of any task, components.model.tasks) for the same
held-out rows; every metric as a function of resample counts is in :mod:`components.release.metric_scorers`,
and what the numbers mean for a promotion is decided in :mod:`components.release.gates`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from components.model.tasks import BINARY, MULTICLASS, REGRESSION, check_task
from components.release.metric_scorers import scorer
from components.vocabulary import METRIC_DIRECTIONS, TASK_METRICS, higher_is_better

BOOTSTRAP_METRICS = tuple(METRIC_DIRECTIONS)  # every metric of every task has a paired test
_CHUNK_CELLS = 1_000_000  # resample counts held at once (rows x resamples), 8 MB of float64
_EXACT_MCNEMAR_BELOW = 25  # discordant pairs; the chi-squared approximation is poor below this


def _resample_counts(rng: np.random.Generator, n: int, size: int, groups: np.ndarray, m: int) -> np.ndarray:
    """How often each of ``m`` row groups is drawn in each of ``size`` resamples (groups x resamples).

    ``groups`` maps each of the ``n`` rows to its group; rows are drawn uniformly, as always.
    """
    draws = groups[rng.integers(0, n, size=(size, n))]  # a new array: safe to work on in place
    if size > 1:
        draws *= size
        draws += np.arange(size)[:, None]
    return np.bincount(draws.ravel(), minlength=m * size).reshape(m, size).astype(np.float64)


def _distinct_rows(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One representative row per distinct combination of ``columns``, and each row's group.

    Rows that agree on the label and both scores are interchangeable for every metric here,
    so a resample only needs how often each combination was drawn. A model's scores take
    few distinct values on tabular data (tens of thousands over a million rows is common).
    """
    groups = np.zeros(len(columns[0]), dtype=np.int64)
    first = np.zeros(1, dtype=np.int64)
    for column in columns:
        _, codes = np.unique(column, return_inverse=True)
        pair = groups * (int(codes.max()) + 1) + codes.reshape(-1)  # below n**2: no int64 overflow
        _, first, groups = np.unique(pair, return_index=True, return_inverse=True)
    order = np.argsort(first)  # groups in order of first appearance: no ties, no reordering at all
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return first[order], rank[groups.reshape(-1)]


def _inputs(task: str, metric: str, y_true, a, b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The target and both models' scores as the task's scorers take them, checked."""
    if metric not in TASK_METRICS[check_task(task)]:
        raise ValueError(f"no paired test for {task} metric {metric!r}; known: {', '.join(TASK_METRICS[task])}")
    y = np.asarray(y_true).astype(np.float64 if task != MULTICLASS else np.int64)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if not len(y) == len(a) == len(b) or len(y) == 0:
        raise ValueError(f"y_true ({len(y)}), proba_a ({len(a)}), proba_b ({len(b)}) must be equal and non-empty")
    if task == MULTICLASS:
        if a.ndim != 2 or a.shape != b.shape:
            raise ValueError(f"multiclass scores must be (rows, classes) of one shape; got {a.shape} and {b.shape}")
        if y.min() < 0 or y.max() >= a.shape[1]:
            raise ValueError(f"y_true must hold class indices 0..{a.shape[1] - 1} for {a.shape[1]} score columns")
        absent = np.flatnonzero(np.bincount(y, minlength=a.shape[1]) == 0)
        if metric == "roc_auc_ovr" and len(absent):
            raise ValueError(f"roc_auc_ovr needs every class in y_true; class index(es) {absent.tolist()} absent")
    elif a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"{task} scores must be one value per row; got shapes {a.shape} and {b.shape}")
    if task == BINARY and y.min() == y.max():
        raise ValueError(f"{metric} needs both classes in y_true; all rows are {int(y[0])}")
    return y, a, b


def _validity(task: str, metric: str, y_d: np.ndarray, n: int, k: int) -> Callable[[np.ndarray], np.ndarray] | None:
    """Which resamples the metric is defined on, from their counts; None when it is defined on all."""
    if task == BINARY:  # single-class resamples are skipped for every binary metric, as always

        def both_classes(w: np.ndarray) -> np.ndarray:
            n_pos = y_d @ w
            return (n_pos > 0) & (n_pos < n)

        return both_classes
    if metric == "roc_auc_ovr":  # a class's AUC needs the class in the resample
        indicator = (y_d[None, :] == np.arange(k)[:, None]).astype(np.float64)
        return lambda w: (indicator @ w > 0).all(axis=0)
    return None


def paired_bootstrap(
    y_true: np.ndarray,
    proba_a: np.ndarray,
    proba_b: np.ndarray,
    *,
    metric: str,
    threshold: float,
    n_resamples: int,
    seed: int,
    confidence: float,
    task: str = BINARY,
) -> dict[str, Any]:
    """Percentile CI of ``metric(a) - metric(b)`` over the same resampled rows.

    ``proba_a``/``proba_b`` are the two models' scores in ``task``'s form (positive-class probabilities,
    ``(n, k)`` class probabilities, or predicted values) and ``y_true`` the encoded target. Resamples are
    drawn as count vectors, so every metric, ROC AUC included, is computed for a whole chunk of
    resamples with array operations (:mod:`components.release.metric_scorers`). Counts are kept per
    distinct (label, scores a, scores b) row rather than per row: the same draws give the same values
    (exactly; metrics that sum floats up to rounding) at a cost per resample that follows the number of
    distinct rows. Resamples a metric is undefined on are skipped (``n_valid`` says how many remain):
    single-class ones in binary, ones missing a class for ``roc_auc_ovr``. ``p_value`` is one-sided:
    the share of resamples where a is not better than b (lower is better for losses and errors).
    """
    y, a, b = _inputs(task, metric, y_true, proba_a, proba_b)
    n = len(y)
    one = np.ones((n, 1))
    value_a, value_b = (float(scorer(task, metric, y, p, threshold)(one)[0]) for p in (a, b))
    columns = (y, a, b) if task != MULTICLASS else (y, *a.T, *b.T)
    first, groups = _distinct_rows(*columns)
    y_d = y[first]
    score_a, score_b = (scorer(task, metric, y_d, p[first], threshold) for p in (a, b))
    defined = _validity(task, metric, y_d, n, a.shape[1] if a.ndim == 2 else 0)
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // n)
    diffs = []
    for start in range(0, n_resamples, chunk):
        w = _resample_counts(rng, n, min(chunk, n_resamples - start), groups, len(first))
        if defined is not None:
            valid = defined(w)
            w = w if valid.all() else w[:, valid]
        diffs.append(score_a(w) - score_b(w))
    d = np.concatenate(diffs) if diffs else np.empty(0)
    if d.size == 0:
        if task == BINARY:
            raise ValueError("every bootstrap resample held a single class; is y_true all one class?")
        raise ValueError(f"{metric} was undefined on every bootstrap resample: a class too rare in y_true?")
    alpha = 1 - confidence
    low, high = np.quantile(d, [alpha / 2, 1 - alpha / 2])
    not_better = d <= 0 if higher_is_better(metric) else d >= 0
    return {
        "method": "paired_bootstrap",
        "metric": metric,
        "a": value_a,
        "b": value_b,
        "diff": value_a - value_b,
        "ci_low": float(low),
        "ci_high": float(high),
        "confidence": confidence,
        "p_value": float((not_better.sum() + 1) / (d.size + 1)),
        "n_resamples": n_resamples,
        "n_valid": int(d.size),
        "seed": seed,
    }


def predicted_labels(task: str, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Class indices a classifier's scores answer (for McNemar): by threshold, or the most probable class."""
    if task == BINARY:
        return (np.asarray(scores) >= threshold).astype(np.int64)
    if task == MULTICLASS:
        return np.argmax(np.asarray(scores), axis=1)
    raise ValueError(f"a {REGRESSION} model predicts no labels")


def mcnemar(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict[str, Any]:
    """McNemar's test on paired predictions: exact binomial below 25 discordant pairs, else chi2 (corrected).

    ``b``: rows a gets right and b wrong; ``c``: the reverse. Two-sided p-value.
    """
    y = np.asarray(y_true).astype(int)
    right_a = np.asarray(pred_a).astype(int) == y
    right_b = np.asarray(pred_b).astype(int) == y
    b, c = int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b))
    n = b + c
    if n == 0:
        return {"method": "exact", "b": 0, "c": 0, "statistic": 0.0, "p_value": 1.0}
    if n < _EXACT_MCNEMAR_BELOW:
        tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
        return {
            "method": "exact",
            "b": b,
            "c": c,
            "statistic": float(min(b, c)),
            "p_value": min(1.0, 2 * tail),
        }
    statistic = (abs(b - c) - 1) ** 2 / n
    # chi-squared survival with one degree of freedom: P(Z^2 > x) = erfc(sqrt(x / 2))
    return {
        "method": "chi2",
        "b": b,
        "c": c,
        "statistic": statistic,
        "p_value": math.erfc(math.sqrt(statistic / 2)),
    }
