"""Metrics per data slice, so a model that is better on average but worse for a group is caught.

Numeric columns are cut into quantile bins (edges from the frame given), other
columns are sliced by value. Binary and regression metrics are computed with one
``groupby`` per column; multiclass ones with the task's metrics once per slice.
There are no per-row loops.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd

from components.model.tasks import BINARY, MULTICLASS, REGRESSION, check_task
from components.vocabulary import PRIMARY_METRICS

SliceTable = dict[str, dict[str, float | int | None]]
# Per multiclass slice after n and accuracy: f1_macro first, then the other metrics a gate may rank on.
_MULTICLASS_REST = tuple(m for m in PRIMARY_METRICS[MULTICLASS] if m != "accuracy")


def _num(value: float) -> str:
    """Short text for a number: ``17`` rather than ``17.0``, four significant digits otherwise."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


def _is_binned(series: pd.Series, bins: int) -> bool:
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    return numeric and series.nunique(dropna=True) > bins


def _slice_keys(series: pd.Series, column: str, bins: int) -> pd.Categorical:
    """One label per row (``age=[17, 28)``, ``sex=Female``), missing values left out."""
    if _is_binned(series, bins):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        edges = np.unique(np.quantile(values[~np.isnan(values)], np.linspace(0.0, 1.0, bins + 1)))
        labels = [f"{column}=[{_num(lo)}, {_num(hi)})" for lo, hi in zip(edges[:-2], edges[1:-1], strict=True)]
        labels.append(f"{column}=[{_num(edges[-2])}, {_num(edges[-1])}]")
        codes = np.searchsorted(edges[1:-1], values, side="right")
        codes[np.isnan(values)] = -1
        return pd.Categorical.from_codes(codes, categories=labels)
    uniques = pd.unique(series.dropna())
    with contextlib.suppress(TypeError):  # mixed types keep their order of appearance
        uniques = np.sort(uniques)
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    names = {v: f"{column}={_num(v) if numeric else v}" for v in uniques}
    labels = list(dict.fromkeys(names.values()))
    return pd.Categorical(series.map(names).to_numpy(dtype=object), categories=labels)


def _group_metrics(scores: pd.DataFrame, keys: pd.Categorical, min_size: int) -> SliceTable:
    df = scores.assign(key=keys)
    grouped = df.groupby("key", observed=True, sort=True)
    counts = grouped.agg(
        n=("y", "size"),
        pos=("y", "sum"),
        correct=("correct", "sum"),
        tp=("tp", "sum"),
        fp=("fp", "sum"),
        fn=("fn", "sum"),
    )
    # Mann-Whitney form of ROC AUC: average ranks within each slice handle ties as sklearn does.
    ranks = grouped["p"].rank(method="average")
    pos_rank_sum = (ranks * df["y"]).groupby(df["key"], observed=True, sort=True).sum()
    pos = counts["pos"].astype(np.float64)
    neg = counts["n"] - pos
    auc = (pos_rank_sum - pos * (pos + 1) / 2) / (pos * neg).where((pos > 0) & (neg > 0))
    f1_den = 2 * counts["tp"] + counts["fp"] + counts["fn"]
    f1 = (2 * counts["tp"] / f1_den.where(f1_den > 0)).fillna(0.0)
    table: SliceTable = {}
    for key, row in counts.iterrows():  # one iteration per slice, not per row
        n = int(row["n"])
        if n < min_size:
            continue
        table[str(key)] = {
            "n": n,
            "positive_rate": float(row["pos"] / n),
            "accuracy": float(row["correct"] / n),
            "f1": float(f1[key]),
            "roc_auc": None if pd.isna(auc[key]) else float(auc[key]),
        }
    return table


def _multiclass_metrics(y: np.ndarray, p: np.ndarray, keys: pd.Categorical, min_size: int, k: int) -> SliceTable:
    """n and every multiclass primary metric per slice (None where undefined: roc_auc_ovr on a slice
    missing a class)."""
    from components.evaluation.metrics import multiclass_metrics

    codes = np.asarray(keys.codes)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(keys.categories) + 1))
    table: SliceTable = {}
    for code, name in enumerate(keys.categories):  # one iteration per slice, not per row
        rows = order[bounds[code] : bounds[code + 1]]
        if len(rows) == 0 or len(rows) < min_size:
            continue
        metrics = multiclass_metrics(y[rows], p[rows], k)
        table[str(name)] = {"n": len(rows)} | {m: metrics.get(m) for m in ("accuracy", *_MULTICLASS_REST)}
    return table


def _regression_metrics(y: np.ndarray, v: np.ndarray, keys: pd.Categorical, min_size: int) -> SliceTable:
    """n, mean_target, rmse, mae and r2 per slice (r2 None on a slice whose target does not vary)."""
    error = v - y
    df = pd.DataFrame({"y": y, "squared": error**2, "absolute": np.abs(error), "key": keys})
    grouped = df.groupby("key", observed=True, sort=True)
    stats = grouped.agg(
        n=("y", "size"), mean=("y", "mean"), ss=("squared", "sum"), sa=("absolute", "sum"), var=("y", "var")
    )
    table: SliceTable = {}
    for key, row in stats.iterrows():  # one iteration per slice, not per row
        n = int(row["n"])
        if n < min_size:
            continue
        ss_tot = row["var"] * (n - 1)  # pandas' variance is computed stably; n - 1 undoes its ddof
        table[str(key)] = {
            "n": n,
            "mean_target": float(row["mean"]),
            "rmse": float(np.sqrt(row["ss"] / n)),
            "mae": float(row["sa"] / n),
            "r2": float(1 - row["ss"] / ss_tot) if n > 1 and ss_tot > 0 else None,
        }
    return table


def slice_metrics(
    frame: pd.DataFrame,
    y_true: np.ndarray,
    proba: np.ndarray,
    *,
    slice_columns: list[str],
    min_size: int,
    threshold: float,
    bins: int = 4,
    task: str = BINARY,
    n_classes: int | None = None,
) -> SliceTable:
    """Metrics per slice from the encoded target and the model's scores (``proba``) for ``task``.

    - binary: n, positive_rate, accuracy, f1 and roc_auc (None when the slice has one class);
    - multiclass: n, accuracy, f1_macro and the other primary metrics (None where undefined);
    - regression: n, mean_target, rmse, mae and r2 (None when the target is constant in the slice).

    Slices with fewer than ``min_size`` rows are skipped: their metrics are noise.
    """
    check_task(task)
    y = np.asarray(y_true, dtype=np.float64) if task == REGRESSION else np.asarray(y_true).astype(int)
    p = np.asarray(proba, dtype=np.float64)
    if not len(frame) == len(y) == len(p):
        raise ValueError(f"frame ({len(frame)}), y_true ({len(y)}) and proba ({len(p)}) differ in length")
    missing = [c for c in slice_columns if c not in frame.columns]
    if missing:
        raise ValueError(f"unknown slice column(s): {', '.join(missing)}")
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    k = p.shape[1] if task == MULTICLASS and n_classes is None else n_classes
    if task == BINARY:
        pred = (p >= threshold).astype(int)
        scores = pd.DataFrame(
            {
                "y": y,
                "p": p,
                "correct": (pred == y).astype(int),
                "tp": pred & y,
                "fp": pred & (1 - y),
                "fn": (1 - pred) & y,
            }
        )
    table: SliceTable = {}
    for column in slice_columns:
        keys = _slice_keys(frame[column].reset_index(drop=True), column, bins)
        if task == BINARY:
            table.update(_group_metrics(scores, keys, min_size))
        elif task == MULTICLASS:
            table.update(_multiclass_metrics(y, p, keys, min_size, k))
        else:
            table.update(_regression_metrics(y, p, keys, min_size))
    return table
