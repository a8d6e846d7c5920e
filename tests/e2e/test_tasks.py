"""Multiclass and regression end to end, as a user brings them: `mlops contract infer` guesses the task,
`mlops run` (no --set) trains every candidate of that task, gates against the no-feature baseline,
registers, builds a real bento, infra-validates it over HTTP and promotes; the served answers equal
the registered pyfunc's. Data: scikit-learn's bundled wine (string class names) and diabetes tables.
"""

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from components.release import registry
from tests.conftest import make_project

pytestmark = pytest.mark.slow
CULTIVARS = {0: "barolo", 1: "grignolino", 2: "barbera"}


def _cli(*argv) -> int:
    from flows.cli.main import main

    return main([str(a) for a in argv])


def wine_frame() -> pd.DataFrame:
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"})
    frame["cultivar"] = frame["cultivar"].map(CULTIVARS)
    return frame


def diabetes_frame() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "progression"})
    frame["sex"] = frame["sex"].map({1.0: "F", 2.0: "M"})  # a categorical feature, as exports have
    return frame


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("tasks"))
    (root / "exports").mkdir()
    wine_frame().to_csv(root / "exports" / "wine.csv", index=False)
    diabetes_frame().to_csv(root / "exports" / "diabetes.csv", index=False)
    return root


def _bring(project, name: str, target: str) -> dict:
    """The README's two commands for a new dataset, with no --set; the champion's tags."""
    params, data = project / "params.yaml", project / "exports" / f"{name}.csv"
    contract = project / "contracts" / f"{name}.yaml"
    assert _cli("--params", params, "contract", "infer", "--data", data, "--target", target, "--out", contract) == 0
    assert _cli("--params", params, "run", "--data", data, "--contract", contract) == 0
    registry.configure_tracking(project)
    version = registry.alias_version(name, "champion")
    assert version is not None, registry.list_versions(name)[0]["tags"]
    return {"version": version, "tags": registry.client().get_model_version(name, version).tags}


@pytest.fixture(scope="module")
def wine(project, prefect_harness):
    return _bring(project, "wine", "cultivar")


@pytest.fixture(scope="module")
def diabetes(project, prefect_harness):
    return _bring(project, "diabetes", "progression")


def _served_and_pyfunc(project, name: str, version: str, bento: str, rows: pd.DataFrame):
    from components.model.trained import pyfunc_input
    from components.release.bento_server import serve_bento
    from components.release.infra_validation import frame_to_records

    registry.configure_tracking(project)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    expected = pyfunc.predict(pyfunc_input(pyfunc, rows))
    with serve_bento(bento) as served:
        answer = httpx.post(f"{served.url}/predict", json={"records": frame_to_records(rows)}, timeout=30)
        openapi = httpx.get(f"{served.url}/docs.json", timeout=30)
        metrics = httpx.get(f"{served.url}/metrics", timeout=30).text
    assert answer.status_code == 200, answer.text
    return expected, answer.json()["predictions"], openapi, metrics


def test_contract_infer_writes_the_task_with_its_reason(project, wine, diabetes):
    for name, task in (("wine", "multiclass"), ("diabetes", "regression")):
        text = (project / "contracts" / f"{name}.yaml").read_text()
        line = next(line for line in text.splitlines() if line.startswith("task:"))
        assert line.split("#")[0].split(":")[1].strip() == task and "#" in line  # says why it guessed
        assert yaml.safe_load(text)["task"] == task
    assert yaml.safe_load((project / "contracts" / "wine.yaml").read_text())["labels"] == sorted(CULTIVARS.values())


def test_multiclass_is_chosen_by_macro_f1_and_beats_the_class_prior(project, wine):
    tags = wine["tags"]
    assert tags["task"] == "multiclass" and tags["primary_metric"] == "f1_macro"
    assert tags["decision"] == "promote" and tags["gate.baseline"].startswith("pass f1_macro")
    assert "class-prior baseline" in tags["decision_reason"]
    assert "labels equal" in tags["infra_validation"]
    run = registry.client().get_run(registry.client().get_model_version("wine", wine["version"]).run_id)
    metrics = run.data.metrics
    for metric in ("accuracy", "balanced_accuracy", "f1_macro", "f1_weighted", "log_loss", "roc_auc_ovr"):
        assert f"test_{metric}" in metrics, metric
    assert metrics["test_f1_macro"] > 0.8 and metrics["test_log_loss"] < 1.0


def test_multiclass_serves_the_label_and_probabilities_by_class_name(project, wine):
    rows = wine_frame().drop(columns=["cultivar"]).sample(30, random_state=1)
    expected, served, openapi, metrics = _served_and_pyfunc(
        project, "wine", wine["version"], wine["tags"]["bento_tag"], rows
    )
    assert [p["label"] for p in served] == list(expected["label"])
    for i, p in enumerate(served):
        assert set(p["probabilities"]) == set(CULTIVARS.values())
        assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-9)
        assert p["probability"] == pytest.approx(max(p["probabilities"].values()), abs=1e-12)
        for cls, prob in p["probabilities"].items():
            assert prob == pytest.approx(expected[f"proba_{cls}"].iloc[i], abs=1e-9)
    assert "probabilities" in openapi.text
    assert 'mlops_predictions_total{label="barolo"' in metrics or "mlops_predictions_total{label=" in metrics


def test_regression_is_chosen_by_rmse_and_beats_the_training_mean(project, diabetes):
    tags = diabetes["tags"]
    assert tags["task"] == "regression" and tags["primary_metric"] == "rmse"
    assert tags["decision"] == "promote" and tags["gate.baseline"].startswith("pass rmse")
    assert "training-mean baseline" in tags["decision_reason"]
    run = registry.client().get_run(registry.client().get_model_version("diabetes", diabetes["version"]).run_id)
    metrics = run.data.metrics
    assert {"test_rmse", "test_mae", "test_r2", "test_mape"} <= set(metrics)  # no zero target: MAPE is defined
    assert metrics["test_r2"] > 0.2


def test_regression_serves_values_equal_to_the_pyfunc(project, diabetes):
    rows = diabetes_frame().drop(columns=["progression"]).sample(30, random_state=2)
    expected, served, openapi, metrics = _served_and_pyfunc(
        project, "diabetes", diabetes["version"], diabetes["tags"]["bento_tag"], rows
    )
    values = np.array([p["value"] for p in served])
    np.testing.assert_allclose(values, expected["value"].to_numpy(), rtol=0, atol=1e-9)
    assert all(set(p) == {"value", "model_version"} for p in served)
    assert "mlops_prediction_value" in metrics


def test_a_worse_regression_challenger_is_kept_because_lower_rmse_is_better(project, diabetes):
    """A heavily regularised ridge alone has a clearly higher RMSE than the champion: if direction were
    ignored anywhere in the gate, the higher error would look like a gain."""
    params = project / "params.yaml"
    others = [f"train.candidates.{c}.enabled=false" for c in ("hgb", "rf", "lgbm", "mlp")]
    sets = sum((["--set", s] for s in [*others, "train.candidates.ridge.alpha=100000"]), [])
    assert _cli("--params", params, "run", "--data", project / "exports" / "diabetes.csv",
                "--contract", project / "contracts" / "diabetes.yaml", *sets) == 0  # fmt: skip
    registry.configure_tracking(project)
    newest = registry.list_versions("diabetes")[0]
    assert registry.alias_version("diabetes", "champion") == diabetes["version"] != newest["version"]
    assert newest["tags"]["decision"] == "keep" and newest["tags"]["gate.metric"] == "rmse"
    assert float(newest["tags"]["gate.diff"]) > 0  # challenger rmse minus champion rmse: worse


def test_a_task_that_does_not_fit_the_target_is_refused_naming_the_key(project, capsys):
    contract = project / "contracts" / "wine-as-binary.yaml"
    data = yaml.safe_load((project / "contracts" / "wine.yaml").read_text())
    contract.write_text(yaml.safe_dump({**data, "task": "binary", "name": "wine-as-binary"}, sort_keys=False))
    capsys.readouterr()
    code = _cli("--params", project / "params.yaml", "run", "--data", project / "exports" / "wine.csv",
                "--contract", contract)  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "task" in err and "Traceback" not in err
    registry.configure_tracking(project)
    assert registry.list_versions("wine-as-binary") == []
