"""assess_on_test on real models of each task, and the champion's scores read through a real MLflow pyfunc."""

import logging
import textwrap

import numpy as np
import pytest

from components.evaluation.assess import assess_on_test, champion_scores
from components.evaluation.metrics import task_metrics
from components.training.families import train_candidate
from components.vocabulary import TASK_METRICS
from tests.training.task_data import MULTICLASS_LABELS, make_frame

FAMILY = {
    "multiclass": ("sklearn_logreg", {"C": 1.0, "max_iter": 300}),
    "regression": ("sklearn_ridge", {"alpha": 1.0}),
}
FILES = {
    "multiclass": ["confusion.csv", "confusion.png", "pr.json", "pr_per_class.png", "slices.png"],
    "regression": ["predicted.csv", "predicted_vs_actual.png", "residuals.json", "residuals.png", "slices.png"],
}


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_assess_on_test_per_task(tmp_path, task):
    train, test = make_frame(task, 300, 0), make_frame(task, 200, 1)
    family, params = FAMILY[task]
    model = train_candidate("c", family, params, train.drop(columns="target"), train["target"], seed=0, task=task)
    direction = {"multiclass": {"class": "high"}, "regression": {}}[task]
    invariance = {"max_flip_rate": 0.2} if task == "multiclass" else {"tolerance": 5.0, "max_fraction": 0.5}
    specs = [
        {"kind": "directional", "column": "x1", "delta": 0.5, "expect": "increase", "min_fraction": 0.9, **direction},
        {"kind": "invariance", "column": "x2", "perturbation": {"shift": 0.01}, **invariance},
    ]
    result = assess_on_test(model, test, "target", slice_columns=["colour"], min_slice_size=10, bins=4,
                            behaviour_specs=specs, out_dir=tmp_path)  # fmt: skip
    assert set(result.metrics) >= set(TASK_METRICS[task]) - {"roc_auc_ovr"}
    n_classes = len(MULTICLASS_LABELS) if task == "multiclass" else None
    assert result.metrics == task_metrics(task, result.y_true, result.proba, n_classes=n_classes)
    if task == "multiclass":
        assert result.proba.shape == (200, 3) and result.metrics["accuracy"] > 0.6
        np.testing.assert_array_equal(result.y_true, [MULTICLASS_LABELS.index(v) for v in test["target"]])
    else:
        assert result.proba.shape == (200,) and result.metrics["r2"] > 0.5
    assert {"colour=red", "colour=blue"} <= set(result.slices)
    assert all(b.passed for b in result.behaviour), [b.detail for b in result.behaviour]
    assert sorted(p.name for p in result.files.values()) == FILES[task]
    assert all(p.parent == tmp_path / "plots" for p in result.files.values())


CHAMPION = textwrap.dedent(
    """
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.pyfunc import PythonModel


    class Champion(PythonModel):
        '''A champion from an older dataset: classes high and zzz, no mid; also a value and a probability.'''

        def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
            x = model_input["x1"].to_numpy(dtype=float)
            high = 1 / (1 + np.exp(-x))
            return pd.DataFrame({"label": np.where(high > 0.5, "high", "low"), "probability": high,
                                 "proba_high": high, "proba_low": (1 - high) / 2, "proba_zzz": (1 - high) / 2,
                                 "value": 10 * x})


    mlflow.models.set_model(Champion())
    """
)


@pytest.fixture(scope="module")
def champion_uri(tmp_path_factory):
    import mlflow

    root = tmp_path_factory.mktemp("champion")
    (root / "champion.py").write_text(CHAMPION)
    mlflow.pyfunc.save_model(root / "model", python_model=str(root / "champion.py"), pip_requirements=[])
    return str(root / "model")


def test_champion_scores_follow_the_challengers_form(champion_uri, caplog):
    test = make_frame("multiclass", 50, 2)
    high = 1 / (1 + np.exp(-test["x1"].to_numpy()))
    with caplog.at_level(logging.WARNING, logger="components.evaluation.assess"):
        scores = champion_scores(champion_uri, test, "target", task="multiclass", classes=MULTICLASS_LABELS)
    assert scores.shape == (50, 3)  # high, low, mid: the challenger's order
    np.testing.assert_allclose(scores[:, 0], high)
    np.testing.assert_allclose(scores[:, 1], (1 - high) / 2)
    assert (scores[:, 2] == 0).all()  # mid: the champion never answers it
    assert "'mid'" in caplog.text and "proba_zzz" in caplog.text
    binary = champion_scores(champion_uri, test, "target")
    np.testing.assert_allclose(binary, high)
    values = champion_scores(champion_uri, test, "target", task="regression")
    np.testing.assert_allclose(values, 10 * test["x1"].to_numpy())
    with pytest.raises(ValueError, match="no probability column"):
        champion_scores(champion_uri, test, "target", task="multiclass", classes=["a", "b", "c"])
