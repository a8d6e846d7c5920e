import os
from pathlib import Path

import pytest

from components.release import package, registry


def test_a_uri_we_exported_is_never_taken_for_the_users(tmp_path, monkeypatch):
    """mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; a later project must not inherit it."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    a = registry.configure_tracking(tmp_path / "a")
    assert os.environ.get("MLFLOW_TRACKING_URI") == a  # what MLflow exported for us
    user = f"sqlite:///{tmp_path / 'user.db'}"
    with monkeypatch.context() as m:
        m.setenv("MLFLOW_TRACKING_URI", user)
        assert registry.configure_tracking(tmp_path / "b") == user  # the user's choice wins
    # the variable is back to the value exported for project a: still ours, not the user's
    c = registry.configure_tracking(tmp_path / "c")
    assert c == f"sqlite:///{(tmp_path / 'c').resolve() / 'mlflow.db'}"


def test_pip_requirements_pin_what_each_family_needs():
    from importlib.metadata import version

    base = registry.pip_requirements("sklearn_logreg")
    assert f"scikit-learn=={version('scikit-learn')}" in base
    assert not any(p.startswith(("torch", "lightgbm")) for p in base)
    assert f"lightgbm=={version('lightgbm')}" in registry.pip_requirements("lightgbm")
    assert any(p.startswith("torch==") for p in registry.pip_requirements("torch_mlp"))
    assert not any(p.startswith("lightgbm") for p in registry.pip_requirements("torch_mlp"))


def _iris_and_diabetes():
    from sklearn.datasets import load_diabetes, load_iris

    iris = load_iris(as_frame=True)
    labels = iris.target.map(dict(enumerate(iris.target_names)))
    diabetes = load_diabetes(as_frame=True)
    return (iris.data, labels), (diabetes.data, diabetes.target)


def test_log_model_describes_multiclass_and_regression_outputs(tmp_path, monkeypatch):
    """Real models, a real SQLite store: the signature's outputs are predict_frame's columns per task."""
    import mlflow

    from components.training.families import train_candidate

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    registry.configure_tracking(tmp_path, experiment="tests")
    (X, y), (Xr, yr) = _iris_and_diabetes()
    lgbm = {"n_estimators": 5, "learning_rate": 0.3, "num_leaves": 4, "min_child_samples": 5}
    multiclass = train_candidate("mc", "lightgbm", lgbm, X, y, seed=0, task="multiclass")
    regression = train_candidate("reg", "sklearn_ridge", {"alpha": 1.0}, Xr, yr, seed=0, task="regression")
    with mlflow.start_run():
        mc_uri, reg_uri = registry.log_model(multiclass, X), registry.log_model(regression, Xr)
    mc, reg = mlflow.pyfunc.load_model(mc_uri), mlflow.pyfunc.load_model(reg_uri)
    outputs = mc.metadata.get_output_schema().input_names()
    assert outputs == ["label", "probability", "proba_setosa", "proba_versicolor", "proba_virginica"]
    assert reg.metadata.get_output_schema().input_names() == ["value"]
    answer = mc.predict(X.head(3))
    assert (
        answer["label"].tolist() == y.head(3).tolist() and answer.filter(like="proba_").sum(axis=1).round(9).eq(1).all()
    )
    assert reg.predict(Xr.head(2))["value"].tolist() == regression.predict_scores(Xr.head(2)).tolist()
    # what packaging reads from the logged model: the extra package, the task and the classes
    mc_dir, reg_dir = (Path(mlflow.artifacts.download_artifacts(u, dst_path=str(tmp_path / n)))
                       for n, u in (("mc", mc_uri), ("reg", reg_uri)))  # fmt: skip
    assert package.model_packages(mc_dir) == ("lightgbm",) and package.model_packages(reg_dir) == ()
    meta = package.model_meta(mc_dir)
    assert (meta["task"], meta["classes"]) == ("multiclass", ["setosa", "versicolor", "virginica"])
    assert package.serving_config("regression", None, [1.0, 2.0], package.model_meta(reg_dir)) == {
        "task": "regression",
        "classes": [],
        "value_buckets": [1.0, 2.0],
    }
    with pytest.raises(ValueError, match="task: the bento was asked for 'binary', but the model is a 'multiclass'"):
        package.serving_config("binary", None, None, meta)
