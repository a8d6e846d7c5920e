"""The gate's statistics: a paired bootstrap of one metric's difference, and McNemar's test.

Pure functions over arrays of labels and scores for the same held-out rows; what the
numbers mean for a promotion is decided in :mod:`components.release.gates`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from components.vocabulary import METRIC_DIRECTIONS, higher_is_better

BOOTSTRAP_METRICS = tuple(METRIC_DIRECTIONS)  # every metric of the task has a paired test
_CHUNK_CELLS = 1_000_000  # resample counts held at once (rows x resamples), 8 MB of float64
_EXACT_MCNEMAR_BELOW = 25  # discordant pairs; the chi-squared approximation is poor below this


def _scorer(metric: str, y: np.ndarray, proba: np.ndarray, threshold: float) -> Callable[[np.ndarray], np.ndarray]:
    """``metric`` as a function of bootstrap counts ``w`` (rows x resamples), one value per resample.

    Sorting and per-row terms are computed once here, not once per resample.
    """
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
        p = np.clip(proba, 1e-15, 1 - 1e-15)
        loss = -(y * np.log(p) + (1 - y) * np.log1p(-p)) if metric == "log_loss" else (p - y) ** 2
        return lambda w: loss @ w / w.sum(axis=0)
    if metric not in BOOTSTRAP_METRICS:
        raise ValueError(f"no paired test for metric {metric!r}; known: {', '.join(BOOTSTRAP_METRICS)}")
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
) -> dict[str, Any]:
    """Percentile CI of ``metric(a) - metric(b)`` over the same resampled rows.

    Resamples are drawn as count vectors, so every metric, ROC AUC included,
    is computed for a whole chunk of resamples with array operations. Counts
    are kept per distinct (label, score a, score b) row rather than per row:
    the same draws give the same values (exactly; log loss and Brier, which
    sum floats, up to rounding) at a cost per resample that follows the
    number of distinct rows. Single-class resamples
    are skipped (``n_valid`` says how many remain). ``p_value`` is one-sided:
    the share of resamples where a is not better than b.
    """
    if metric not in BOOTSTRAP_METRICS:
        raise ValueError(f"no paired test for metric {metric!r}; known: {', '.join(BOOTSTRAP_METRICS)}")
    y = np.asarray(y_true).astype(np.float64)
    a, b = np.asarray(proba_a, dtype=np.float64), np.asarray(proba_b, dtype=np.float64)
    if not len(y) == len(a) == len(b) or len(y) == 0:
        raise ValueError(f"y_true ({len(y)}), proba_a ({len(a)}), proba_b ({len(b)}) must be equal and non-empty")
    if y.min() == y.max():
        raise ValueError(f"{metric} needs both classes in y_true; all rows are {int(y[0])}")
    n = len(y)
    one = np.ones((n, 1))
    value_a, value_b = (float(_scorer(metric, y, p, threshold)(one)[0]) for p in (a, b))
    first, groups = _distinct_rows(y, a, b)
    y_d = y[first]
    score_a, score_b = (_scorer(metric, y_d, p[first], threshold) for p in (a, b))
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // n)
    diffs = []
    for start in range(0, n_resamples, chunk):
        w = _resample_counts(rng, n, min(chunk, n_resamples - start), groups, len(first))
        n_pos = y_d @ w
        valid = (n_pos > 0) & (n_pos < n)
        w = w if valid.all() else w[:, valid]
        diffs.append(score_a(w) - score_b(w))
    d = np.concatenate(diffs) if diffs else np.empty(0)
    if d.size == 0:
        raise ValueError("every bootstrap resample held a single class; is y_true all one class?")
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
