"""Every metric as a function of bootstrap counts, for the paired bootstrap in :mod:`gate_statistics`.

``scorer(task, metric, y, scores, ...)`` returns ``f(w)``: ``w`` holds one column of counts per resample
(how often each row was drawn), and ``f(w)`` the metric's value on each resample. With ``w`` all ones
the value is :func:`components.evaluation.metrics.task_metrics`'s. Sorting, per-row terms and indicator
matrices are computed once here, not once per resample; a resample is then a few matrix products.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from components.model.tasks import BINARY, MULTICLASS, REGRESSION, check_task
from components.vocabulary import TASK_METRICS

Scorer = Callable[[np.ndarray], np.ndarray]
_CLIP = 1e-15  # as components.evaluation.metrics clips probabilities before a logarithm


def binary_scorer(metric: str, y: np.ndarray, proba: np.ndarray, threshold: float) -> Scorer:
    """A binary metric; ``y`` is 0/1 as float64, ``proba`` the positive class's probability."""
    if metric in ("roc_auc", "pr_auc"):
        order = np.argsort(-proba if metric == "pr_auc" else proba, kind="stable")
        ranked, ys = proba[order], y[order][:, None]
        starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])  # one group per distinct score
        tied = len(starts) < len(ranked)

        def ranking(w: np.ndarray) -> np.ndarray:
            ws = w[order]
            pos = ws * ys
            neg = ws - pos
            if tied:  # pool each group of equal scores, as sklearn does
                pos, neg = np.add.reduceat(pos, starts, axis=0), np.add.reduceat(neg, starts, axis=0)
            if metric == "roc_auc":  # Mann-Whitney: negatives ranked below count 1, tied ones 1/2
                below = np.cumsum(neg, axis=0, out=None if tied else neg)
                n_neg = below[-1].copy()
                if tied:
                    below -= 0.5 * neg
                return np.einsum("ij,ij->j", pos, below) / ((ws.sum(axis=0) - n_neg) * n_neg)
            tp, seen = np.cumsum(pos, axis=0), np.cumsum(ws if not tied else pos + neg, axis=0)
            precision = np.divide(tp, seen, out=np.zeros_like(tp), where=seen > 0)
            return np.einsum("ij,ij->j", pos, precision) / tp[-1]  # average precision, as sklearn defines it

        return ranking
    if metric in ("log_loss", "brier"):
        p = np.clip(proba, _CLIP, 1 - _CLIP)
        loss = -(y * np.log(p) + (1 - y) * np.log1p(-p)) if metric == "log_loss" else (p - y) ** 2
        return lambda w: loss @ w / w.sum(axis=0)
    _check(BINARY, metric)
    pred = (proba >= threshold).astype(np.float64)
    cells = np.stack([pred * y, pred * (1 - y), (1 - pred) * y, (1 - pred) * (1 - y)])  # tp, fp, fn, tn

    def counting(w: np.ndarray) -> np.ndarray:
        tp, fp, fn, tn = cells @ w
        if metric == "accuracy":
            return (tp + tn) / (tp + fp + fn + tn)
        if metric == "f1":
            den = 2 * tp + fp + fn
            return np.divide(2 * tp, den, out=np.zeros_like(den), where=den > 0)
        return 0.5 * (tp / (tp + fn) + tn / (tn + fp))  # balanced accuracy

    return counting


def multiclass_scorer(metric: str, y: np.ndarray, proba: np.ndarray) -> Scorer:
    """A multiclass metric; ``y`` holds class indices, ``proba`` is ``(n, k)`` in class order."""
    _check(MULTICLASS, metric)
    y = y.astype(np.int64)
    n, k = proba.shape
    if metric == "roc_auc_ovr":  # each class against the rest with the binary ranking, then the macro mean
        per_class = [binary_scorer("roc_auc", (y == c).astype(np.float64), proba[:, c], 0.5) for c in range(k)]
        return lambda w: sum(f(w) for f in per_class) / k
    if metric == "log_loss":
        loss = -np.log(np.clip(proba[np.arange(n), y], _CLIP, 1 - _CLIP))
        return lambda w: loss @ w / w.sum(axis=0)
    pred = np.argmax(proba, axis=1)
    if metric == "accuracy":
        correct = (pred == y).astype(np.float64)
        return lambda w: correct @ w / w.sum(axis=0)
    classes = np.arange(k)[:, None]
    actual = (y[None, :] == classes).astype(np.float64)  # classes x rows indicator matrices
    predicted = (pred[None, :] == classes).astype(np.float64)
    hit = actual * predicted

    def counting(w: np.ndarray) -> np.ndarray:
        support, tp = actual @ w, hit @ w  # classes x resamples
        if metric == "balanced_accuracy":  # mean recall over the classes the resample holds
            present = support > 0
            recall = np.divide(tp, support, out=np.zeros_like(tp), where=present)
            return recall.sum(axis=0) / present.sum(axis=0)
        den = support + predicted @ w  # 2 tp + fp + fn
        f1 = np.divide(2 * tp, den, out=np.zeros_like(tp), where=den > 0)
        if metric == "f1_macro":  # over the classes in the target or the predictions, as sklearn
            return f1.sum(axis=0) / (den > 0).sum(axis=0)
        return (f1 * support).sum(axis=0) / support.sum(axis=0)  # f1_weighted: by each class's support

    return counting


def regression_scorer(metric: str, y: np.ndarray, values: np.ndarray) -> Scorer:
    """A regression metric as weighted sums of per-row terms."""
    _check(REGRESSION, metric)
    error = values - y
    if metric == "rmse":
        squared = error**2
        return lambda w: np.sqrt(squared @ w / w.sum(axis=0))
    if metric == "mae":
        absolute = np.abs(error)
        return lambda w: absolute @ w / w.sum(axis=0)
    if metric == "mape":
        if (y == 0).any():
            raise ValueError("mape divides by the target, which is zero on some rows: choose rmse, mae or r2")
        relative = np.abs(error) / np.abs(y)
        return lambda w: relative @ w / w.sum(axis=0)
    # r2 = 1 - SS_res / SS_tot. The target is centred once so that SS_tot, a difference of two sums here,
    # loses no digits to a large mean.
    centred = y - y.mean()
    terms = np.stack([error**2, centred, centred**2])

    def r2(w: np.ndarray) -> np.ndarray:
        ss_res, total, square = terms @ w
        ss_tot = square - total**2 / w.sum(axis=0)
        varies = ss_tot > 1e-12 * square  # else a constant target (up to rounding): 1 for a perfect fit, else 0,
        fit = np.where(ss_res == 0, 1.0, 0.0)  # as sklearn's force_finite says
        return np.where(varies, 1 - ss_res / np.where(varies, ss_tot, 1.0), fit)

    return r2


def scorer(task: str, metric: str, y: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> Scorer:
    """``metric`` of ``task`` as a function of bootstrap counts (see the module docstring)."""
    if check_task(task) == BINARY:
        return binary_scorer(metric, y.astype(np.float64), scores, threshold)
    if task == MULTICLASS:
        return multiclass_scorer(metric, y, scores)
    return regression_scorer(metric, y, scores)


def _check(task: str, metric: str) -> None:
    if metric not in TASK_METRICS[task]:
        raise ValueError(f"no paired test for {task} metric {metric!r}; known: {', '.join(TASK_METRICS[task])}")
