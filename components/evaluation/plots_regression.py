"""Plots of a regression model (PNG) and their data for ``dvc plots``.

Files under ``out_dir``: predicted_vs_actual.png, residuals.png and (given slices) slices.png, the
error per slice; predicted.csv (actual,predicted, one line per row) and residuals.json (a histogram
of the residuals, predicted minus actual: rows of residual, the bin's centre, and count). JSON is
written with sorted keys: equal inputs give equal bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.evaluation.plot_canvas import figure, number, save, slices_plot

MAX_SCATTER_POINTS = 5000  # more only hides the picture under ink and bloats the PNG
RESIDUAL_BINS = 30


def _inputs(y_true: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, v = np.asarray(y_true, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if y.ndim != 1 or y.shape != v.shape or len(y) == 0:
        raise ValueError(f"regression plots need one prediction per target value, got {v.shape} for {y.shape}")
    return y, v


def _sample(n: int) -> np.ndarray:
    """Evenly spaced rows, at most MAX_SCATTER_POINTS: deterministic, unlike a random sample."""
    return np.unique(np.linspace(0, n - 1, min(n, MAX_SCATTER_POINTS)).round().astype(int))


def _predicted_vs_actual(y: np.ndarray, v: np.ndarray, path: Path) -> Path:
    rows = _sample(len(y))
    low, high = float(min(y.min(), v.min())), float(max(y.max(), v.max()))
    fig = figure(5.0, 5.0)
    ax = fig.add_subplot()
    ax.scatter(y[rows], v[rows], s=6, alpha=0.4, label=f"rows ({len(rows)} of {len(y)})")
    ax.plot([low, high], [low, high], linestyle="--", color="grey", label="perfect")
    ax.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual")
    ax.legend(loc="upper left")
    return save(fig, path)


def _residuals(v: np.ndarray, residual: np.ndarray, counts: np.ndarray, edges: np.ndarray, path: Path) -> Path:
    rows = _sample(len(v))
    fig = figure(9.0, 4.0)
    left, right = fig.subplots(1, 2)
    left.scatter(v[rows], residual[rows], s=6, alpha=0.4)
    left.axhline(0.0, linestyle="--", color="grey")
    left.set(xlabel="predicted", ylabel="residual (predicted - actual)", title="Residuals vs predicted")
    right.stairs(counts, edges, fill=True)
    right.axvline(0.0, linestyle="--", color="grey")
    right.set(xlabel="residual (predicted - actual)", ylabel="rows", title="Residual distribution")
    return save(fig, path)


def write_regression_plots(
    y_true: np.ndarray,
    values: np.ndarray,
    *,
    slices: dict[str, dict[str, Any]] | None,
    out_dir: str | Path,
) -> dict[str, Path]:
    """The files named in the module docstring; keys ending ``_data`` are the ``dvc plots`` files."""
    y, v = _inputs(y_true, values)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    residual = v - y
    counts, edges = np.histogram(residual, bins=RESIDUAL_BINS)
    paths = {
        "predicted_vs_actual": _predicted_vs_actual(y, v, out / "predicted_vs_actual.png"),
        "residuals": _residuals(v, residual, counts, edges, out / "residuals.png"),
    }
    if slices:
        paths["slices"] = slices_plot(
            slices, out / "slices.png", ("rmse", "mae"), unit_range=False, title="Error per slice"
        )
    paths["predicted_data"] = out / "predicted.csv"
    pd.DataFrame({"actual": y, "predicted": v}).to_csv(paths["predicted_data"], index=False)
    centres = (edges[:-1] + edges[1:]) / 2
    rows = [{"residual": number(c), "count": int(n)} for c, n in zip(centres, counts, strict=True)]
    paths["residuals_data"] = out / "residuals.json"
    paths["residuals_data"].write_text(json.dumps({"residuals": rows}, indent=1, sort_keys=True))
    return paths
