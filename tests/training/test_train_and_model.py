import numpy as np
import pandas as pd
import pytest

from components.evaluation.metrics import binary_metrics, choose_best, evaluate
from components.model.files import UnsafeModelFileError, load_model, save_model
from components.training.families import UnknownFamilyError, train_candidate

PARAMS = {
    "sklearn_logreg": {"C": 1.0, "max_iter": 200},
    "sklearn_hgb": {"learning_rate": 0.2, "max_iter": 20, "max_leaf_nodes": 8},
    "torch_mlp": {"hidden": [8], "epochs": 5, "lr": 0.01, "batch_size": 16},
    "sklearn_rf": {"n_estimators": 20, "max_depth": 4, "min_samples_leaf": 2},
    "lightgbm": {"n_estimators": 20, "learning_rate": 0.2, "num_leaves": 8, "min_child_samples": 5},
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
    known = "sklearn_logreg, sklearn_hgb, torch_mlp, sklearn_ridge, sklearn_rf, lightgbm"
    with pytest.raises(UnknownFamilyError, match=f"known families: {known}"):
        train_candidate("c", "svm", {}, frame.drop(columns="label"), frame["label"], seed=0)


def test_single_class_target_is_refused(frame):
    with pytest.raises(ValueError, match="exactly two target labels"):
        train_candidate("c", "sklearn_logreg", PARAMS["sklearn_logreg"], frame[["x1"]], pd.Series(["a"] * 160), seed=0)


def test_missing_feature_column_is_named(frame):
    model = train_candidate(
        "c", "sklearn_logreg", PARAMS["sklearn_logreg"], frame[["x1", "x2"]], frame["label"], seed=0
    )
    with pytest.raises(KeyError, match="x2"):
        model.predict_proba(frame[["x1"]])


def test_skops_loader_refuses_foreign_types(tmp_path):
    import skops.io as sio

    from components.model import files as model_mod

    sio.dump({"f": pd.Timestamp("2020-01-01")}, tmp_path / "x.skops")
    with pytest.raises(UnsafeModelFileError, match="pandas"):
        model_mod._skops_load(tmp_path / "x.skops")


def test_metrics_and_thresholds():
    y = np.array([0, 0, 1, 1])
    m = binary_metrics(y, np.array([0.1, 0.6, 0.7, 0.9]), 0.5)
    assert m["roc_auc"] == 1.0 and m["accuracy"] == 0.75 and m["threshold"] == 0.5


def test_choose_best_is_deterministic_on_ties():
    from components.evaluation.metrics import EvalResult

    a, b = EvalResult("a", "val", 1, {"roc_auc": 0.9}), EvalResult("b", "val", 1, {"roc_auc": 0.9})
    assert choose_best([a, b], "roc_auc").candidate == "a"
    with pytest.raises(ValueError, match="disabled"):
        choose_best([], "roc_auc")


def _noise(n: int, seed: int):
    """Labels unrelated to features: any fit beyond the first epochs is overfitting."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6)).astype(np.float32), rng.integers(0, 2, size=n)


def test_early_stopping_stops_when_validation_loss_rises_and_keeps_the_best_weights():
    from components.model.torch_net import fit_mlp, mean_bce

    X, y = _noise(48, 0)
    X_val, y_val = _noise(48, 1)
    fit = fit_mlp(X, y, hidden=[64], epochs=300, lr=0.05, batch_size=8, weight_decay=0.0, seed=0,
                  X_val=X_val, y_val=y_val, patience=5)  # fmt: skip
    assert fit.epochs_trained < 300
    assert fit.epochs_trained == fit.best_epoch + 5 == len(fit.val_losses)
    assert min(fit.val_losses) == fit.val_losses[fit.best_epoch - 1]
    assert mean_bce(fit.net, X_val, y_val) == pytest.approx(fit.val_losses[fit.best_epoch - 1], abs=1e-7)
    assert not fit.net.training


def test_early_stopping_is_deterministic():
    from components.model.torch_net import fit_mlp, mlp_proba

    X, y = _noise(48, 0)
    X_val, y_val = _noise(48, 1)
    kw = {"hidden": [16], "epochs": 100, "lr": 0.05, "batch_size": 8, "weight_decay": 0.0, "seed": 3}
    a = fit_mlp(X, y, X_val=X_val, y_val=y_val, patience=4, **kw)
    b = fit_mlp(X, y, X_val=X_val, y_val=y_val, patience=4, **kw)
    assert (a.epochs_trained, a.best_epoch, a.val_losses) == (b.epochs_trained, b.best_epoch, b.val_losses)
    np.testing.assert_array_equal(mlp_proba(a.net, X_val), mlp_proba(b.net, X_val))


def test_fit_mlp_without_patience_trains_every_epoch():
    from components.model.torch_net import fit_mlp

    X, y = _noise(32, 0)
    fit = fit_mlp(X, y, hidden=[4], epochs=3, lr=0.01, batch_size=8, weight_decay=0.0, seed=0)
    assert (fit.epochs_trained, fit.best_epoch, fit.val_losses) == (3, 3, ())
    with pytest.raises(ValueError, match="patience=2 needs validation data"):
        fit_mlp(X, y, hidden=[4], epochs=3, lr=0.01, batch_size=8, weight_decay=0.0, seed=0, patience=2)


def test_patience_without_validation_data_is_a_clear_error(frame):
    params = {**PARAMS["torch_mlp"], "early_stopping_patience": 3}
    with pytest.raises(ValueError, match="candidate 'mlp' sets early_stopping_patience=3.*pass X_val and y_val"):
        train_candidate("mlp", "torch_mlp", params, frame.drop(columns="label"), frame["label"], seed=0)


def test_early_stopping_through_train_candidate_records_epochs(frame, tmp_path):
    import json

    train, val = frame.iloc[:100], frame.iloc[100:]
    params = {**PARAMS["torch_mlp"], "epochs": 200, "lr": 0.05, "early_stopping_patience": 3}
    model = train_candidate("mlp", "torch_mlp", params, train.drop(columns="label"), train["label"], seed=0,
                            X_val=val.drop(columns="label"), y_val=val["label"])  # fmt: skip
    assert model.extra["best_epoch"] + 3 == model.extra["epochs_trained"] < 200
    json.dumps(model.extra)
    loaded = load_model(save_model(model, tmp_path / "m"))
    np.testing.assert_array_equal(loaded.predict_proba(val), model.predict_proba(val))


def test_validation_labels_must_be_known(frame):
    params = {**PARAMS["torch_mlp"], "early_stopping_patience": 3}
    X, y = frame.drop(columns="label"), frame["label"]
    with pytest.raises(ValueError, match=r"y_val has labels not seen in training: \['maybe'\]"):
        train_candidate("mlp", "torch_mlp", params, X, y, seed=0, X_val=X.head(3), y_val=pd.Series(["maybe"] * 3))


def test_a_whole_config_spec_trains_and_keeps_only_model_params(frame):
    from components.training.candidate_settings import HGBCandidate

    spec = HGBCandidate(
        family="sklearn_hgb", learning_rate=0.2, max_iter=20, max_leaf_nodes=8,
        search={"learning_rate": {"low": 0.01, "high": 0.3}},
    ).model_dump()  # fmt: skip
    model = train_candidate("hgb", spec["family"], spec, frame.drop(columns="label"), frame["label"], seed=0)
    assert model.params == {"learning_rate": 0.2, "max_iter": 20, "max_leaf_nodes": 8}
