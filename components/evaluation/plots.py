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

from components.evaluation.plot_canvas import figure, number, save, slices_plot, thin
from components.model.tasks import MULTICLASS, REGRESSION, check_task


def _inputs(y_true: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y_true).astype(int), np.asarray(proba, dtype=np.float64)
    if len(y) != len(p) or len(np.unique(y)) != 2:
        raise ValueError("y_true and proba must be the same length and y_true must hold both classes")
    return y, p


def _roc(y: np.ndarray, p: np.ndarray, path: Path) -> Path:
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    fig = figure()
    ax = fig.add_subplot()
    ax.plot(fpr, tpr, label=f"AUC = {roc_auc_score(y, p):.4f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve")
    ax.legend(loc="lower right")
    return save(fig, path)


def _pr(y: np.ndarray, p: np.ndarray, path: Path) -> Path:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    precision, recall, _ = precision_recall_curve(y, p)
    fig = figure()
    ax = fig.add_subplot()
    ax.step(recall, precision, where="post", label=f"AP = {average_precision_score(y, p):.4f}")
    ax.axhline(y.mean(), linestyle="--", color="grey", label="positive rate")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall curve", ylim=(0, 1.02))
    ax.legend(loc="lower left")
    return save(fig, path)


def _calibration(y: np.ndarray, p: np.ndarray, path: Path) -> Path:
    from sklearn.calibration import calibration_curve

    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="uniform")
    fig = figure(5.0, 5.0)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    top.plot(predicted, observed, marker="o", label="model")
    top.set(ylabel="observed positive rate", title="Calibration")
    top.legend(loc="upper left")
    bottom.hist(p, bins=20, range=(0, 1), color="tab:blue")
    bottom.set(xlabel="predicted probability", ylabel="rows")
    return save(fig, path)


def _confusion(y: np.ndarray, pred: np.ndarray, threshold: float, path: Path) -> Path:
    counts = np.zeros((2, 2), dtype=int)
    np.add.at(counts, (y, pred), 1)
    fig = figure(4.0, 4.0)
    ax = fig.add_subplot()
    ax.imshow(counts, cmap="Blues")
    for (i, j), count in np.ndenumerate(counts):
        ax.text(j, i, str(count), ha="center", va="center", color="white" if count > counts.max() / 2 else "black")
    ax.set(xticks=[0, 1], yticks=[0, 1], xlabel="predicted", ylabel="actual", title=f"Confusion at {threshold:g}")
    return save(fig, path)


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
        "confusion_matrix": _confusion(y, (p >= threshold).astype(int), threshold, out / "confusion_matrix.png"),
    }
    if slices:
        paths["slices"] = slices_plot(slices, out / "slices.png")
    return paths


def write_plot_data(y_true: np.ndarray, proba: np.ndarray, *, threshold: float, out_dir: str | Path) -> dict[str, Path]:
    """roc.json, pr.json and confusion.csv in the shapes ``dvc plots`` reads.

    The first ROC point has threshold +inf in scikit-learn and the last PR point
    has none; both are written as null.
    """
    from sklearn.metrics import precision_recall_curve, roc_curve

    y, p = _inputs(y_true, proba)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fpr, tpr, roc_thr = roc_curve(y, p)
    roc = [{"fpr": number(fpr[i]), "tpr": number(tpr[i]), "threshold": number(roc_thr[i])} for i in thin(len(fpr))]
    precision, recall, pr_thr = precision_recall_curve(y, p)
    pr_thr = np.append(pr_thr, np.nan)
    pr = [
        {"precision": number(precision[i]), "recall": number(recall[i]), "threshold": number(pr_thr[i])}
        for i in thin(len(precision))
    ]
    paths = {"roc": out / "roc.json", "pr": out / "pr.json", "confusion": out / "confusion.csv"}
    paths["roc"].write_text(json.dumps({"roc": roc}, indent=1))
    paths["pr"].write_text(json.dumps({"pr": pr}, indent=1))
    pd.DataFrame({"actual": y, "predicted": (p >= threshold).astype(int)}).to_csv(paths["confusion"], index=False)
    return paths


def write_task_plots(
    task: str,
    y_true: np.ndarray,
    scores: np.ndarray,
    *,
    threshold: float,
    classes: list[Any],
    slices: dict[str, dict[str, Any]] | None,
    out_dir: str | Path,
) -> dict[str, Path]:
    """Every plot of ``task`` (PNG) and its data for ``dvc plots`` (keys ending ``_data``), under ``out_dir``.

    binary: roc, pr, calibration, confusion_matrix (.png), roc.json, pr.json, confusion.csv;
    multiclass: confusion.png, pr_per_class.png, confusion.csv, pr.json;
    regression: predicted_vs_actual.png, residuals.png, predicted.csv, residuals.json;
    each with slices.png when ``slices`` are given. ``y_true`` is encoded, ``scores`` the task's.
    """
    if check_task(task) == MULTICLASS:
        from components.evaluation.plots_multiclass import write_multiclass_plots

        return write_multiclass_plots(y_true, scores, classes=classes, slices=slices, out_dir=out_dir)
    if task == REGRESSION:
        from components.evaluation.plots_regression import write_regression_plots

        return write_regression_plots(y_true, scores, slices=slices, out_dir=out_dir)
    files = write_eval_plots(y_true, scores, threshold=threshold, slices=slices, out_dir=out_dir)
    data = write_plot_data(y_true, scores, threshold=threshold, out_dir=out_dir)
    return files | {f"{k}_data": v for k, v in data.items()}
