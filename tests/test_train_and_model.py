import numpy as np
import pandas as pd
import pytest

from components.evaluate import binary_metrics, choose_best, evaluate, failed_thresholds
from components.model import UnsafeModelFileError, load_model, save_model
from components.train import UnknownFamilyError, train_candidate

PARAMS = {
    "sklearn_logreg": {"C": 1.0, "max_iter": 200},
    "sklearn_hgb": {"learning_rate": 0.2, "max_iter": 20, "max_leaf_nodes": 8},
    "torch_mlp": {"hidden": [8], "epochs": 5, "lr": 0.01, "batch_size": 16},
}


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(0)
    n = 160
    x1 = rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    y = np.where(x1 + (colour == "red") * 1.5 + rng.normal(scale=0.3, size=n) > 0.5, "yes", "no")
    return pd.DataFrame({"x1": x1, "x2": rng.normal(size=n), "colour": colour, "label": y})


@pytest.mark.parametrize("family", list(PARAMS))
def test_each_family_learns_predicts_raw_frames_and_round_trips(family, frame, tmp_path):
    X, y = frame.drop(columns="label"), frame["label"]
    model = train_candidate("c", family, PARAMS[family], X, y, seed=1)
    assert model.classes == ["no", "yes"]
    result = evaluate(model, frame, "label", "train")
    assert result.metrics["roc_auc"] > 0.8
    out = model.predict_frame(X.head(10))
    assert set(out["label"]) <= {"no", "yes"} and out["probability"].between(0, 1).all()

    loaded = load_model(save_model(model, tmp_path / "m"))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert not list(tmp_path.glob("m/*.pkl"))


@pytest.mark.parametrize("family", list(PARAMS))
def test_training_is_deterministic(family, frame):
    X, y = frame.drop(columns="label"), frame["label"]
    a = train_candidate("c", family, PARAMS[family], X, y, seed=5).predict_proba(X)
    b = train_candidate("c", family, PARAMS[family], X, y, seed=5).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_unknown_family_lists_known(frame):
    with pytest.raises(UnknownFamilyError, match="known families: sklearn_logreg, sklearn_hgb, torch_mlp"):
        train_candidate("c", "svm", {}, frame.drop(columns="label"), frame["label"], seed=0)


def test_single_class_target_is_refused(frame):
    with pytest.raises(ValueError, match="exactly two target labels"):
        train_candidate(
            "c", "sklearn_logreg", PARAMS["sklearn_logreg"], frame[["x1"]], pd.Series(["a"] * 160), seed=0
        )


def test_missing_feature_column_is_named(frame):
    model = train_candidate(
        "c", "sklearn_logreg", PARAMS["sklearn_logreg"], frame[["x1", "x2"]], frame["label"], seed=0
    )
    with pytest.raises(KeyError, match="x2"):
        model.predict_proba(frame[["x1"]])


def test_skops_loader_refuses_foreign_types(tmp_path):
    import skops.io as sio

    from components import model as model_mod

    sio.dump({"f": pd.Timestamp("2020-01-01")}, tmp_path / "x.skops")
    with pytest.raises(UnsafeModelFileError, match="pandas"):
        model_mod._skops_load(tmp_path / "x.skops")


def test_metrics_and_thresholds():
    y = np.array([0, 0, 1, 1])
    m = binary_metrics(y, np.array([0.1, 0.6, 0.7, 0.9]), 0.5)
    assert m["roc_auc"] == 1.0 and m["accuracy"] == 0.75 and m["threshold"] == 0.5
    assert failed_thresholds(m, {"roc_auc": 0.9}) == []
    assert failed_thresholds(m, {"accuracy": 0.8})[0].startswith("accuracy=0.7500")
    assert "no such metric" in failed_thresholds(m, {"auc": 0.5})[0]


def test_choose_best_is_deterministic_on_ties():
    from components.evaluate import EvalResult

    a, b = EvalResult("a", "val", 1, {"roc_auc": 0.9}), EvalResult("b", "val", 1, {"roc_auc": 0.9})
    assert choose_best([a, b], "roc_auc").candidate == "a"
    with pytest.raises(ValueError, match="disabled"):
        choose_best([], "roc_auc")
