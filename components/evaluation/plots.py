"""Evaluation plots (PNG, for MLflow and people) and plot data (JSON/CSV, for ``dvc plots``).

Figures are drawn on matplotlib's Agg canvas without pyplot, so nothing is kept
in a global figure registry and no display is needed; each figure is cleared
after saving.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MAX_CURVE_POINTS = 200


def _figure(width: float = 5.0, height: float = 4.0) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, format="png")
    fig.clear()
    return path


def _inputs(y_true: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y_true).astype(int), np.asarray(proba, dtype=np.float64)
    if len(y) != len(p) or len(np.unique(y)) != 2:
        raise ValueError("y_true and proba must be the same length and y_true must hold both classes")
    return y, p


def _roc(y: np.ndarray, p: np.ndarray, path: Path) -> Path:
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(fpr, tpr, label=f"AUC = {roc_auc_score(y, p):.4f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve")
    ax.legend(loc="lower right")
    return _save(fig, path)


def _pr(y: np.ndarray, p: np.ndarray, path: Path) -> Path:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    precision, recall, _ = precision_recall_curve(y, p)
    fig = _figure()
    ax = fig.add_subplot()
    ax.step(recall, precision, where="post", label=f"AP = {average_precision_score(y, p):.4f}")
    ax.axhline(y.mean(), linestyle="--", color="grey", label="positive rate")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall curve", ylim=(0, 1.02))
    ax.legend(loc="lower left")
    return _save(fig, path)


def _calibration(y: np.ndarray, p: np.ndarray, path: Path) -> Path:
    from sklearn.calibration import calibration_curve

    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="uniform")
    fig = _figure(5.0, 5.0)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    top.plot(predicted, observed, marker="o", label="model")
    top.set(ylabel="observed positive rate", title="Calibration")
    top.legend(loc="upper left")
    bottom.hist(p, bins=20, range=(0, 1), color="tab:blue")
    bottom.set(xlabel="predicted probability", ylabel="rows")
    return _save(fig, path)


def _confusion(y: np.ndarray, pred: np.ndarray, threshold: float, path: Path) -> Path:
    counts = np.zeros((2, 2), dtype=int)
    np.add.at(counts, (y, pred), 1)
    fig = _figure(4.0, 4.0)
    ax = fig.add_subplot()
    ax.imshow(counts, cmap="Blues")
    for (i, j), count in np.ndenumerate(counts):
        ax.text(
            j, i, str(count), ha="center", va="center", color="white" if count > counts.max() / 2 else "black"
        )
    ax.set(
        xticks=[0, 1], yticks=[0, 1], xlabel="predicted", ylabel="actual", title=f"Confusion at {threshold:g}"
    )
    return _save(fig, path)


def _slices(slices: dict[str, dict[str, Any]], path: Path) -> Path:
    names = list(slices)
    fig = _figure(7.0, max(2.5, 0.35 * len(names) + 1.2))
    ax = fig.add_subplot()
    pos = np.arange(len(names))
    accuracy = [slices[k]["accuracy"] for k in names]
    auc = [np.nan if slices[k].get("roc_auc") is None else slices[k]["roc_auc"] for k in names]
    ax.barh(pos - 0.2, accuracy, height=0.4, label="accuracy")
    ax.barh(pos + 0.2, auc, height=0.4, label="roc_auc")
    ax.set_yticks(pos, [f"{k} (n={slices[k]['n']})" for k in names])
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel="metric", title="Metrics per slice")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside, clear of the bars
    return _save(fig, path)


def write_eval_plots(
    y_true: np.ndarray,
    proba: np.ndarray,
    *,
    threshold: float,
    slices: dict[str, dict[str, Any]] | None,
    out_dir: str | Path,
) -> dict[str, Path]:
    """roc.png, pr.png, calibration.png, confusion_matrix.png and (given slices) slices.png."""
    y, p = _inputs(y_true, proba)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "roc": _roc(y, p, out / "roc.png"),
        "pr": _pr(y, p, out / "pr.png"),
        "calibration": _calibration(y, p, out / "calibration.png"),
        "confusion_matrix": _confusion(
            y, (p >= threshold).astype(int), threshold, out / "confusion_matrix.png"
        ),
    }
    if slices:
        paths["slices"] = _slices(slices, out / "slices.png")
    return paths


def _thin(n: int, limit: int = MAX_CURVE_POINTS) -> np.ndarray:
    """At most ``limit`` evenly spaced indices into ``n`` points, first and last kept."""
    return np.unique(np.linspace(0, n - 1, min(n, limit)).round().astype(int))


def _number(value: float) -> float | None:
    return round(float(value), 6) if np.isfinite(value) else None  # JSON has no Infinity


def write_plot_data(
    y_true: np.ndarray, proba: np.ndarray, *, threshold: float, out_dir: str | Path
) -> dict[str, Path]:
    """roc.json, pr.json and confusion.csv in the shapes ``dvc plots`` reads.

    The first ROC point has threshold +inf in scikit-learn and the last PR point
    has none; both are written as null.
    """
    from sklearn.metrics import precision_recall_curve, roc_curve

    y, p = _inputs(y_true, proba)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fpr, tpr, roc_thr = roc_curve(y, p)
    roc = [
        {"fpr": _number(fpr[i]), "tpr": _number(tpr[i]), "threshold": _number(roc_thr[i])}
        for i in _thin(len(fpr))
    ]
    precision, recall, pr_thr = precision_recall_curve(y, p)
    pr_thr = np.append(pr_thr, np.nan)
    pr = [
        {"precision": _number(precision[i]), "recall": _number(recall[i]), "threshold": _number(pr_thr[i])}
        for i in _thin(len(precision))
    ]
    paths = {"roc": out / "roc.json", "pr": out / "pr.json", "confusion": out / "confusion.csv"}
    paths["roc"].write_text(json.dumps({"roc": roc}, indent=1))
    paths["pr"].write_text(json.dumps({"pr": pr}, indent=1))
    pd.DataFrame({"actual": y, "predicted": (p >= threshold).astype(int)}).to_csv(
        paths["confusion"], index=False
    )
    return paths
