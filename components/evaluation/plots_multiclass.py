"""Plots of a multiclass classifier (PNG) and their data for ``dvc plots``.

Files under ``out_dir``: confusion.png, pr_per_class.png and (given slices) slices.png; confusion.csv
(actual,predicted as class names, one line per row) and pr.json (one-vs-rest precision-recall points,
rows of class, recall, precision). JSON is written with sorted keys: equal inputs give equal bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.evaluation.plot_canvas import figure, number, save, slices_plot, thin


def _inputs(y_true: np.ndarray, proba: np.ndarray, classes: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y_true).astype(np.int64), np.asarray(proba, dtype=np.float64)
    k = len(classes)
    if p.ndim != 2 or p.shape != (len(y), k) or len(y) == 0:
        raise ValueError(f"multiclass plots need (rows, {k} classes) probabilities for {len(y)} rows, got {p.shape}")
    if y.min() < 0 or y.max() >= k:
        raise ValueError(f"y_true must hold class indices 0..{k - 1}")
    return y, p


def _confusion(y: np.ndarray, pred: np.ndarray, classes: list[Any], path: Path) -> Path:
    k = len(classes)
    counts = np.zeros((k, k), dtype=int)
    np.add.at(counts, (y, pred), 1)
    side = min(12.0, 3.0 + 0.5 * k)
    fig = figure(side, side)
    ax = fig.add_subplot()
    ax.imshow(counts, cmap="Blues")
    if k <= 30:  # beyond that the numbers would not fit their cells
        for (i, j), count in np.ndenumerate(counts):
            color = "white" if count > counts.max() / 2 else "black"
            ax.text(j, i, str(count), ha="center", va="center", color=color, fontsize=8)
    names = [str(c) for c in classes]
    ax.set_xticks(np.arange(k), names, rotation=45, ha="right")
    ax.set_yticks(np.arange(k), names)
    ax.set(xlabel="predicted", ylabel="actual", title="Confusion (most probable class)")
    return save(fig, path)


def _curves(y: np.ndarray, p: np.ndarray, classes: list[Any]) -> list[tuple[str, np.ndarray, np.ndarray, float]]:
    """(class, recall, precision, average precision) one-vs-rest, for each class present in ``y``."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    curves = []
    for c, name in enumerate(classes):
        actual = y == c
        if not actual.any():  # no positives: precision and recall are undefined
            continue
        precision, recall, _ = precision_recall_curve(actual, p[:, c])
        curves.append((str(name), recall, precision, float(average_precision_score(actual, p[:, c]))))
    return curves


def _pr_per_class(curves, path: Path) -> Path:
    fig = figure(6.5, 4.5)
    ax = fig.add_subplot()
    for name, recall, precision, ap in curves:
        ax.step(recall, precision, where="post", label=f"{name} (AP = {ap:.3f})")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall per class (one vs rest)", ylim=(0, 1.02))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return save(fig, path)


def write_multiclass_plots(
    y_true: np.ndarray,
    proba: np.ndarray,
    *,
    classes: list[Any],
    slices: dict[str, dict[str, Any]] | None,
    out_dir: str | Path,
) -> dict[str, Path]:
    """The files named in the module docstring; keys ending ``_data`` are the ``dvc plots`` files."""
    y, p = _inputs(y_true, proba, classes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pred = np.argmax(p, axis=1)
    curves = _curves(y, p, classes)
    paths = {
        "confusion": _confusion(y, pred, classes, out / "confusion.png"),
        "pr_per_class": _pr_per_class(curves, out / "pr_per_class.png"),
    }
    if slices:
        paths["slices"] = slices_plot(slices, out / "slices.png", ("accuracy", "f1_macro"))
    names = np.asarray(classes, dtype=object)
    paths["confusion_data"] = out / "confusion.csv"
    pd.DataFrame({"actual": names[y], "predicted": names[pred]}).to_csv(paths["confusion_data"], index=False)
    rows = [
        {"class": name, "recall": number(recall[i]), "precision": number(precision[i])}
        for name, recall, precision, _ in curves
        for i in thin(len(recall))
    ]
    paths["pr_data"] = out / "pr.json"
    paths["pr_data"].write_text(json.dumps({"pr": rows}, indent=1, sort_keys=True))
    return paths
