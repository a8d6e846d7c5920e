"""Every family for every task it supports: trains, scores in the task's shape, is seeded, and survives
its pickle-free files unchanged (with equal bytes for equal models, which DVC relies on)."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, r2_score, roc_auc_score

from components.model.files import load_model, save_model
from components.training.candidate_settings import FAMILY_TASKS, IMAGE_FAMILIES
from components.training.families import train_candidate
from tests.training.task_data import MULTICLASS_LABELS, make_frame

PARAMS = {
    "sklearn_logreg": {"C": 1.0, "max_iter": 300},
    "sklearn_ridge": {"alpha": 1.0},
    "sklearn_hgb": {"learning_rate": 0.2, "max_iter": 20, "max_leaf_nodes": 8},
    "sklearn_rf": {"n_estimators": 15, "max_depth": None, "min_samples_leaf": 2},
    "torch_mlp": {"hidden": [16], "epochs": 30, "lr": 0.02, "batch_size": 32},
    "lightgbm": {"n_estimators": 30, "learning_rate": 0.2, "num_leaves": 8, "min_child_samples": 5},
}
# The tabular families (image families learn from image frames: tests/images/test_image_pipeline_steps.py)
CASES = [
    (family, task) for family, supported in FAMILY_TASKS.items() if family not in IMAGE_FAMILIES for task in supported
]


def fit(family: str, task: str, frame: pd.DataFrame, seed: int = 0):
    return train_candidate("c", family, PARAMS[family], frame.drop(columns="target"), frame["target"], seed=seed,
                           task=task)  # fmt: skip


@pytest.fixture(scope="module")
def data():
    return {task: (make_frame(task, 240, 0), make_frame(task, 200, 1)) for task in FAMILY_TASKS["torch_mlp"]}


def _quality(task: str, y: np.ndarray, scores: np.ndarray) -> float:
    if task == "binary":
        return roc_auc_score(y, scores)
    if task == "multiclass":
        return accuracy_score(y, scores.argmax(axis=1))
    return r2_score(y, scores)


@pytest.mark.parametrize(("family", "task"), CASES)
def test_family_learns_task_is_seeded_and_round_trips_byte_for_byte(family, task, data, tmp_path):
    train, test = data[task]
    model, again = fit(family, task, train), fit(family, task, train)
    X = test.drop(columns="target")
    scores = model.predict_scores(X)
    assert model.task == task and scores.dtype == np.float64
    if task == "multiclass":
        assert model.classes == MULTICLASS_LABELS and scores.shape == (len(X), 3)
        np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=0, atol=1e-9)
    else:
        assert scores.shape == (len(X),)
        assert model.classes == ([] if task == "regression" else ["no", "yes"])
    y = model.encode_target(test["target"])
    assert _quality(task, y, scores) > {"binary": 0.85, "multiclass": 0.7, "regression": 0.5}[task]
    np.testing.assert_array_equal(again.predict_scores(X), scores)  # same data and seed: same model

    first, second = save_model(model, tmp_path / "a"), save_model(again, tmp_path / "b")
    assert not list(tmp_path.glob("*/*.pkl"))
    assert {p.name: p.read_bytes() for p in first.iterdir()} == {p.name: p.read_bytes() for p in second.iterdir()}
    loaded = load_model(first)
    assert (loaded.task, loaded.classes) == (task, model.classes)
    np.testing.assert_array_equal(loaded.predict_scores(X), scores)
    pd.testing.assert_frame_equal(loaded.predict_frame(X), model.predict_frame(X))


def test_regression_answers_in_target_units_and_has_no_probabilities(data):
    train, test = data["regression"]
    model = fit("torch_mlp", "regression", train)
    values = model.predict_scores(test.drop(columns="target"))
    assert abs(values.mean() - test["target"].mean()) < 10  # the target's mean is about 1000, its spread 50
    assert model.extra["target_mean"] == pytest.approx(train["target"].mean())
    with pytest.raises(TypeError, match="task 'regression'"):
        model.predict_proba(test.drop(columns="target"))


@pytest.mark.parametrize(
    ("task", "columns"),
    [
        ("binary", ["label", "probability"]),
        ("multiclass", ["label", "probability", "proba_high", "proba_low", "proba_mid"]),
        ("regression", ["value"]),
    ],
)
def test_predict_frame_columns_per_task(task, columns, data):
    train, test = data[task]
    model = fit("sklearn_hgb", task, train)
    rows = test.drop(columns="target").iloc[3:9]
    out = model.predict_frame(rows)
    assert list(out.columns) == columns and out.index.equals(rows.index)
    answers, scores = model.predict_arrays(rows)
    if task == "regression":
        np.testing.assert_array_equal(out["value"].to_numpy(), scores)
    elif task == "binary":
        assert out["label"].tolist() == np.where(scores >= 0.5, "yes", "no").tolist()
    else:
        assert out["label"].tolist() == [MULTICLASS_LABELS[i] for i in scores.argmax(axis=1)] == answers.tolist()
        np.testing.assert_array_equal(out["probability"].to_numpy(), scores.max(axis=1))
        np.testing.assert_array_equal(out[["proba_high", "proba_low", "proba_mid"]].to_numpy(), scores)


@pytest.mark.parametrize(("family", "task"), [("sklearn_ridge", "binary"), ("sklearn_ridge", "multiclass"),
                                              ("sklearn_logreg", "regression")])  # fmt: skip
def test_a_family_that_cannot_learn_the_task_is_refused_by_name(family, task, data):
    with pytest.raises(ValueError, match=f"candidate 'c': family '{family}' cannot learn task '{task}'"):
        fit(family, task, data[task][0])


def test_a_regression_target_must_be_numbers(data):
    train = data["binary"][0]
    with pytest.raises(ValueError, match="regression target needs a number on every row"):
        fit("sklearn_ridge", "regression", train)


def test_encode_target_refuses_labels_not_seen_in_training(data):
    model = fit("sklearn_logreg", "multiclass", data["multiclass"][0])
    np.testing.assert_array_equal(model.encode_target(["low", "high", "mid"]), [1, 0, 2])
    with pytest.raises(ValueError, match=r"y_test has labels not seen in training: \['huge'\]"):
        model.encode_target(pd.Series(["low", "huge"]), "y_test")


@pytest.mark.parametrize("family", ["sklearn_logreg", "torch_mlp"])
def test_a_model_json_without_task_loads_as_binary(family, data, tmp_path):
    """Models saved before tasks existed: no ``task``, and torch ones no ``n_outputs``."""
    train, test = data["binary"]
    model = fit(family, "binary", train)
    directory = save_model(model, tmp_path / "m")
    meta = json.loads((directory / "model.json").read_text())
    for key in ("task", "n_outputs"):
        meta.pop(key, None)
    (directory / "model.json").write_text(json.dumps(meta))
    loaded = load_model(directory)
    assert loaded.task == "binary"
    X = test.drop(columns="target")
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


@pytest.mark.parametrize(("family", "task"), [c for c in CASES if c[0] != "sklearn_logreg" or c[1] == "multiclass"])
def test_numpy_fast_path_gives_the_pipelines_answers(family, task):
    """All-numeric features skip sklearn's per-call checks; the answers must not change, for any task."""
    train, test = make_frame(task, 240, 0, numeric_only=True), make_frame(task, 50, 1, numeric_only=True)
    model = fit(family, task, train)
    assert model._fast is not None
    slow = dataclasses.replace(model)
    slow.__dict__["_fast"] = None  # the cached property, pinned to "no fast path"
    X = test.drop(columns="target")
    for rows in (X, X.head(1)):
        np.testing.assert_allclose(model.predict_scores(rows), slow.predict_scores(rows), rtol=0, atol=1e-12)


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_torch_early_stopping_uses_the_tasks_validation_loss(task, data, tmp_path):
    train, val = data[task]
    params = {**PARAMS["torch_mlp"], "epochs": 300, "lr": 0.05, "hidden": [64], "early_stopping_patience": 3}
    model = train_candidate("mlp", "torch_mlp", params, train.drop(columns="target"), train["target"], seed=0,
                            task=task, X_val=val.drop(columns="target"), y_val=val["target"])  # fmt: skip
    assert model.extra["best_epoch"] + 3 == model.extra["epochs_trained"] < 300
    X = val.drop(columns="target")
    np.testing.assert_array_equal(load_model(save_model(model, tmp_path / "m")).predict_scores(X),
                                  model.predict_scores(X))  # fmt: skip


def test_torch_validation_loss_matches_the_task():
    import torch

    from components.model.torch_net import fit_mlp, validation_loss

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 3)).astype(np.float32), rng.integers(0, 3, size=60)
    fit_ = fit_mlp(X, y, hidden=[4], epochs=2, lr=0.01, batch_size=16, weight_decay=0.0, seed=0,
                   task="multiclass", n_outputs=3)  # fmt: skip
    with torch.no_grad():
        logits = fit_.net(torch.as_tensor(X))
    expected = float(torch.nn.functional.cross_entropy(logits, torch.as_tensor(y)))
    assert validation_loss(fit_.net, X, y, "multiclass") == pytest.approx(expected, abs=1e-7)
    with pytest.raises(ValueError, match="one output per class"):
        fit_mlp(X, y, hidden=[4], epochs=1, lr=0.01, batch_size=16, weight_decay=0.0, seed=0, task="multiclass")


def test_lightgbm_text_model_is_the_same_whatever_the_thread_count(data, tmp_path, monkeypatch):
    """Above SMALL_DATA_ROWS LightGBM uses every core; its file must not record this host's core count,
    and ``deterministic`` keeps the trees equal to a single-thread fit."""
    from components.model.lgbm import MODEL_FILE
    from components.training import sklearn_families

    train, _ = data["multiclass"]
    single = (save_model(fit("lightgbm", "multiclass", train), tmp_path / "one") / MODEL_FILE).read_text()
    monkeypatch.setattr(sklearn_families, "SMALL_DATA_ROWS", 10)
    threaded = (save_model(fit("lightgbm", "multiclass", train), tmp_path / "all") / MODEL_FILE).read_text()
    assert "[num_threads: 1]" in single and "[num_threads: 0]" in threaded
    assert single.replace("[num_threads: 1]", "[num_threads: 0]") == threaded
