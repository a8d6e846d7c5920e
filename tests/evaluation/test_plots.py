import json

import numpy as np
import pandas as pd
import pytest

from components.evaluation.plot_canvas import MAX_CURVE_POINTS
from components.evaluation.plots import write_eval_plots, write_plot_data

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 1500)
    proba = 1 / (1 + np.exp(-(2 * y - 1 + rng.normal(size=1500))))
    return y, proba


def test_eval_plots_are_pngs(tmp_path, predictions):
    y, proba = predictions
    slices = {
        "sex=Female": {"n": 700, "accuracy": 0.8, "roc_auc": 0.9},
        "sex=Male": {"n": 800, "accuracy": 0.7, "roc_auc": None},
    }
    paths = write_eval_plots(y, proba, threshold=0.5, slices=slices, out_dir=tmp_path / "plots")
    assert set(paths) == {"roc", "pr", "calibration", "confusion_matrix", "slices"}
    for name, path in paths.items():
        assert path.name == f"{name}.png" and path.read_bytes()[:8] == PNG_MAGIC


def test_eval_plots_without_slices(tmp_path, predictions):
    paths = write_eval_plots(*predictions, threshold=0.5, slices=None, out_dir=tmp_path)
    assert "slices" not in paths and not (tmp_path / "slices.png").exists()


def test_plot_data_for_dvc(tmp_path, predictions):
    y, proba = predictions
    paths = write_plot_data(y, proba, threshold=0.3, out_dir=tmp_path)
    roc = json.loads(paths["roc"].read_text())["roc"]  # strict JSON: no Infinity
    pr = json.loads(paths["pr"].read_text())["pr"]
    assert 2 < len(roc) <= MAX_CURVE_POINTS and 2 < len(pr) <= MAX_CURVE_POINTS
    assert set(roc[0]) == {"fpr", "tpr", "threshold"} and set(pr[0]) == {"precision", "recall", "threshold"}
    assert (roc[0]["fpr"], roc[-1]["tpr"]) == (0.0, 1.0)
    assert np.all(np.diff([p["fpr"] for p in roc]) >= 0)
    confusion = pd.read_csv(paths["confusion"])
    assert list(confusion.columns) == ["actual", "predicted"] and len(confusion) == len(y)
    assert confusion["predicted"].sum() == int((proba >= 0.3).sum())


def test_single_class_is_refused(tmp_path):
    with pytest.raises(ValueError, match="both classes"):
        write_plot_data(np.ones(5), np.linspace(0, 1, 5), threshold=0.5, out_dir=tmp_path)
