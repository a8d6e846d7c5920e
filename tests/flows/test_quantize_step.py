"""`package.quantize`: the int8 step both flows and the DVC release run (flows.quantize_step), on the tabular
MLP here (the CNN is in tests/images), and an MLP released quantized end to end."""

import tempfile

import numpy as np
import pandas as pd
import pytest

from components.model.files import load_model, save_model
from components.model.quantization import is_quantized, quantize_at_load
from components.training.families import train_candidate
from flows import quantize_step, steps
from tests.conftest import FAST, ROOT, cli, make_project


def _frame(n: int, seed: int, task: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["x", "y"], n)})
    score = frame["a"] + 0.5 * frame["b"] + (frame["c"] == "x")
    frame["y"] = score if task == "regression" else (score > 0.5).map({True: "yes", False: "no"})
    return frame


def _mlp(train: pd.DataFrame, task: str = "binary"):
    params = {"epochs": 20, "lr": 0.01, "hidden": [128, 64], "batch_size": 32}  # int8 pays off past tiny nets
    return train_candidate("mlp", "torch_mlp", params, train.drop(columns=["y"]), train["y"], seed=0, task=task)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    root = tmp_path_factory.mktemp("q")
    (root / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    base = ["validate.contract=null", "data.target=y", "promote.registered_model=q"]
    return lambda *overrides: steps.resolve(root / "params.yaml", [*base, *overrides], require_data=False)


def test_an_accepted_mlp_is_logged_float_with_its_recipe_and_loads_int8(ctx):
    model, test = _mlp(_frame(400, 0, "binary")), _frame(200, 1, "binary")
    marked, report, note = quantize_step.quantized(ctx("package.quantize=true"), model, test)
    assert report["accepted"] and note.startswith("quantized model accepted")
    assert report["size_bytes_quantized"] < report["size_bytes_float"]
    assert not is_quantized(marked) and marked.extra["quantization"]["scheme"] == "dynamic_int8"
    with tempfile.TemporaryDirectory() as tmp:
        save_model(marked, tmp)
        loaded = load_model(tmp)
    assert is_quantized(loaded)
    X = test.drop(columns=["y"])
    np.testing.assert_allclose(loaded.predict_scores(X), quantize_at_load(marked).predict_scores(X), atol=1e-12)
    # int8 activations are scaled per call: a row gets the same answer alone as in any batch
    alone = np.concatenate([loaded.predict_scores(X.iloc[[i]]) for i in range(5)])
    np.testing.assert_array_equal(alone, loaded.predict_scores(X)[:5])
    tags = quantize_step.quantization_tags(report)
    assert tags["quantized"] == "true" and float(tags["quantization.size_ratio"]) < 1


def test_a_drop_beyond_the_bound_keeps_the_float_model(ctx):
    model, test = _mlp(_frame(400, 0, "binary")), _frame(200, 1, "binary")
    strict = ctx("package.quantize=true", "package.quantize_max_accuracy_drop=0")
    kept, report, note = quantize_step.quantized(strict, model, test)
    assert report["accepted"] == (report["accuracy_quantized"] >= report["accuracy_float"])
    assert ("quantization" in kept.extra) == report["accepted"]
    assert ("accepted" if report["accepted"] else "refused") in note


def test_what_is_not_quantized_says_why(ctx):
    test = _frame(100, 1, "binary")
    model = _mlp(_frame(300, 0, "binary"))
    assert quantize_step.quantized(ctx(), model, test) == (model, None, "")  # off: nothing to say
    logreg = train_candidate("lr", "sklearn_logreg", {"C": 1.0, "max_iter": 100}, test.drop(columns=["y"]),
                             test["y"], seed=0)  # fmt: skip
    assert "no torch layers" in quantize_step.quantized(ctx("package.quantize=true"), logreg, test)[2]
    regression = _mlp(_frame(300, 0, "regression"), task="regression")
    on = ctx("package.quantize=true")
    on = type(on)(**{**on.__dict__, "task": "regression"})
    assert "regression" in quantize_step.quantized(on, regression, _frame(100, 1, "regression"))[2]


@pytest.mark.slow
def test_an_mlp_released_quantized_is_served_as_the_int8_pyfunc(tmp_path):
    """Through `mlops run`: the MLP alone, quantized, gated, infra-validated (the bento against the registered
    pyfunc, both int8) and promoted; the version says so."""
    import mlflow

    root = make_project(tmp_path / "project")
    only_mlp = [f"train.candidates.{c}.enabled=false" for c in ("logreg", "hgb", "rf", "lgbm")]
    overrides = [*FAST, *only_mlp, "package.quantize=true", "package.quantize_max_accuracy_drop=0.05"]
    assert cli("--params", root / "params.yaml", "run", *(a for o in overrides for a in ("--set", o))) == 0
    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    name = client.search_registered_models()[0].name
    version = client.get_model_version(name, "1")
    assert version.tags["quantized"] == "true", version.tags.get("quantization.reason")
    assert version.tags["decision"] == "promote"  # the int8 bento passed infra validation against the pyfunc
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/1")
    assert is_quantized(pyfunc.unwrap_python_model()._model)
