"""Distribution drift between a reference frame and a current frame.

Numeric columns: PSI over decile bins of the reference (plus a bin for nulls)
and the two-sample KS statistic. Categorical columns: the share of rows with
categories never seen in the reference, and PSI over categories. Everything is
vectorised. The target counts as categorical (its label mix) for classification
and as numeric for regression. Frames over ``MAX_ROWS`` rows are compared on a
seeded row sample of that size (PSI over ten bins does not need more); KS uses
``KS_SAMPLE`` values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from components.data.contract import Contract

EPSILON = 1e-4
N_BINS = 10
KS_SAMPLE = 200_000
MAX_ROWS = 1_000_000


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two count vectors over the same bins."""
    e = np.maximum(expected / max(expected.sum(), 1), EPSILON)
    a = np.maximum(actual / max(actual.sum(), 1), EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def _sample(values: np.ndarray, seed: int = 0) -> np.ndarray:
    if len(values) <= KS_SAMPLE:
        return values
    return values[np.random.default_rng(seed).integers(0, len(values), KS_SAMPLE)]


def ks_statistic(reference: np.ndarray, current: np.ndarray) -> float:
    """Largest gap between the two empirical CDFs (nulls dropped)."""
    ref = np.sort(_sample(reference[~np.isnan(reference)]))
    cur = np.sort(_sample(current[~np.isnan(current)]))
    if not len(ref) or not len(cur):
        return 0.0
    grid = np.concatenate([ref, cur])
    cdf_ref = np.searchsorted(ref, grid, side="right") / len(ref)
    cdf_cur = np.searchsorted(cur, grid, side="right") / len(cur)
    return float(np.max(np.abs(cdf_ref - cdf_cur)))


def _numeric_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    nulls = np.isnan(values)
    counts, _ = np.histogram(values[~nulls], np.concatenate([[-np.inf], edges, [np.inf]]))
    return np.append(counts, nulls.sum())


def numeric_drift(reference: pd.Series, current: pd.Series, threshold: float) -> dict[str, Any]:
    ref = pd.to_numeric(reference, errors="coerce").to_numpy(dtype="float64")
    cur = pd.to_numeric(current, errors="coerce").to_numpy(dtype="float64")
    finite = ref[~np.isnan(ref)]
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, N_BINS + 1)[1:-1])) if len(finite) else np.array([])
    value = psi(_numeric_counts(ref, edges), _numeric_counts(cur, edges))
    return {
        "kind": "numeric",
        "psi": round(value, 6),
        "ks": round(ks_statistic(ref, cur), 6),
        "threshold": threshold,
        "drifted": value > threshold,
    }


def categorical_drift(
    reference: pd.Series, current: pd.Series, threshold: float, new_threshold: float
) -> dict[str, Any]:
    ref_counts = reference.astype("str").where(reference.notna(), "<null>").value_counts()
    cur_counts = current.astype("str").where(current.notna(), "<null>").value_counts()
    cats = ref_counts.index.union(cur_counts.index)
    value = psi(
        ref_counts.reindex(cats, fill_value=0).to_numpy(dtype="float64"),
        cur_counts.reindex(cats, fill_value=0).to_numpy(dtype="float64"),
    )
    unseen = cur_counts[~cur_counts.index.isin(ref_counts.index)]
    new_share = float(unseen.sum() / max(cur_counts.sum(), 1))
    return {
        "kind": "categorical",
        "psi": round(value, 6),
        "new_category_share": round(new_share, 6),
        "new_categories": [str(v) for v in unseen.index[:5]],
        "threshold": threshold,
        "new_category_threshold": new_threshold,
        "drifted": value > threshold or new_share > new_threshold,
    }


def _rows_sample(frame: pd.DataFrame) -> pd.DataFrame:
    if len(frame) <= MAX_ROWS:
        return frame
    rows = np.sort(np.random.default_rng(0).integers(0, len(frame), MAX_ROWS))  # sorted: cache-friendly take
    return frame.iloc[rows]


def drift_report(reference: pd.DataFrame, current: pd.DataFrame, contract: Contract) -> dict[str, Any]:
    """Drift per feature column and the target of ``current`` vs ``reference``.

    A classification target drifts in its label mix (categorical), a regression target in its
    distribution (the numeric test of features).
    """
    opts = contract.drift
    n_reference, n_current = len(reference), len(current)
    reference, current = _rows_sample(reference), _rows_sample(current)
    columns: dict[str, dict[str, Any]] = {}
    for name in [*contract.feature_columns(), contract.target]:
        rule = contract.column(name)
        if rule is None or name not in reference.columns or name not in current.columns:
            continue
        numeric = rule.numeric and (name != contract.target or not contract.is_classification)
        if numeric and pd.api.types.is_numeric_dtype(current[name]):
            columns[name] = numeric_drift(reference[name], current[name], opts.psi_threshold)
        elif not numeric:
            columns[name] = categorical_drift(
                reference[name], current[name], opts.psi_threshold, opts.new_category_threshold
            )
    return {
        "psi_threshold": opts.psi_threshold,
        "new_category_threshold": opts.new_category_threshold,
        "severity": opts.severity,
        "n_reference": n_reference,
        "n_current": n_current,
        "columns": columns,
        "drifted": [name for name, stats in columns.items() if stats["drifted"]],
    }
