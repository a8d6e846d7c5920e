"""Plots of every task: the fixed file names, PNGs that are PNGs, and data files dvc plots can read."""

import json

import numpy as np
import pandas as pd
import pytest

from components.evaluation.plot_canvas import MAX_CURVE_POINTS
from components.evaluation.plots import write_task_plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLASSES = ["cat", "dog", "eel"]


def multiclass_scores(n=900, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)) + 1.5 * np.eye(3)[y]
    return y, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def regression_values(n=900, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.normal(50, 10, n)
    return y, y + rng.normal(0, 3, n)


def names(paths):
    return sorted(p.name for p in paths.values())


def test_multiclass_files(tmp_path):
    y, p = multiclass_scores()
    slices = {"a=1": {"n": 400, "accuracy": 0.7, "f1_macro": 0.6}, "a=2": {"n": 500, "accuracy": 0.8, "f1_macro": None}}
    paths = write_task_plots("multiclass", y, p, threshold=0.5, classes=CLASSES, slices=slices, out_dir=tmp_path)
    assert names(paths) == ["confusion.csv", "confusion.png", "pr.json", "pr_per_class.png", "slices.png"]
    assert all(paths[k].read_bytes()[:8] == PNG_MAGIC for k in ("confusion", "pr_per_class", "slices"))
    confusion = pd.read_csv(paths["confusion_data"])
    assert list(confusion.columns) == ["actual", "predicted"] and len(confusion) == len(y)
    assert set(confusion["actual"]) == set(CLASSES)
    assert (confusion["predicted"] == np.array(CLASSES)[p.argmax(axis=1)]).all()
    pr = json.loads(paths["pr_data"].read_text())["pr"]
    assert set(pr[0]) == {"class", "precision", "recall"}
    assert {row["class"] for row in pr} == set(CLASSES)
    assert all(sum(row["class"] == c for row in pr) <= MAX_CURVE_POINTS for c in CLASSES)


def test_regression_files(tmp_path):
    y, v = regression_values()
    slices = {"a=1": {"n": 400, "rmse": 3.1, "mae": 2.4}, "a=2": {"n": 500, "rmse": 2.9, "mae": 2.2}}
    paths = write_task_plots("regression", y, v, threshold=0.5, classes=[], slices=slices, out_dir=tmp_path)
    assert names(paths) == ["predicted.csv", "predicted_vs_actual.png", "residuals.json", "residuals.png", "slices.png"]
    assert all(paths[k].read_bytes()[:8] == PNG_MAGIC for k in ("predicted_vs_actual", "residuals", "slices"))
    predicted = pd.read_csv(paths["predicted_data"])
    assert list(predicted.columns) == ["actual", "predicted"]
    np.testing.assert_allclose(predicted["predicted"], v)
    residuals = json.loads(paths["residuals_data"].read_text())["residuals"]
    assert sum(row["count"] for row in residuals) == len(y) and set(residuals[0]) == {"count", "residual"}


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_data_files_are_byte_stable_and_slices_optional(tmp_path, task):
    y, s = multiclass_scores() if task == "multiclass" else regression_values()
    classes = CLASSES if task == "multiclass" else []
    first = write_task_plots(task, y, s, threshold=0.5, classes=classes, slices=None, out_dir=tmp_path / "a")
    second = write_task_plots(task, y, s, threshold=0.5, classes=classes, slices=None, out_dir=tmp_path / "b")
    assert "slices" not in first and not (tmp_path / "a" / "slices.png").exists()
    for key in (k for k in first if k.endswith("_data")):
        assert first[key].read_bytes() == second[key].read_bytes()


def test_binary_keeps_its_files(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.5 * y + 0.5 * rng.random(300), 0, 1)
    paths = write_task_plots("binary", y, p, threshold=0.5, classes=["no", "yes"], slices=None, out_dir=tmp_path)
    assert set(paths) == {"roc", "pr", "calibration", "confusion_matrix", "roc_data", "pr_data", "confusion_data"}


def test_shapes_are_checked(tmp_path):
    y, p = multiclass_scores(30)
    with pytest.raises(ValueError, match="3 classes"):
        write_task_plots("multiclass", y, p[:, :2], threshold=0.5, classes=CLASSES, slices=None, out_dir=tmp_path)
    with pytest.raises(ValueError, match="one prediction per target"):
        write_task_plots("regression", y, p, threshold=0.5, classes=[], slices=None, out_dir=tmp_path)
