"""Real bentos per task, served over HTTP: answers, OpenAPI, metrics and infra validation.

One build (in a subprocess, so bentoml is imported with a temporary BENTOML_HOME) registers a
real model per task in a temporary SQLite store and packages it: multiclass LightGBM on iris
(class names as labels), regression histogram gradient boosting on diabetes (value buckets from
training-target quantiles), binary LightGBM on breast cancer (class names as labels). Each is
served with `bentoml serve` on a free port, one at a time: servers of one BENTOML_HOME share its
prometheus multiprocess directory, which each start wipes. The binary e2e suite is tests/e2e/test_serving.py.
"""

import json
from pathlib import Path

import httpx
import pandas as pd
import pytest

from components.release.bento_server import serve_bento
from components.release.infra_validation import frame_to_records, validate_bento
from tests.conftest import build_in_subprocess

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
TASKS = ("binary", "multiclass", "regression")

BUILD = """
import json, sys
from pathlib import Path
import mlflow
import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from components.release import registry
from components.release.package import build_bento
from components.serving.request_schema import schema_from_frame
from components.training.families import train_candidate

root, home = Path(sys.argv[1]), Path(sys.argv[2])
registry.configure_tracking(home, experiment="tests")
iris, diabetes, cancer = (load(as_frame=True) for load in (load_iris, load_diabetes, load_breast_cancer))
lgbm = {"n_estimators": 20, "learning_rate": 0.2, "num_leaves": 4, "min_child_samples": 5}
hgb = {"learning_rate": 0.3, "max_iter": 20, "max_leaf_nodes": 8}
data = {  # task: X, y, family, params, and another model's family and params (a reference that differs)
    "multiclass": (iris.data, iris.target.map(dict(enumerate(iris.target_names))), "lightgbm", lgbm,
                   "sklearn_logreg", {"C": 0.05, "max_iter": 500}),
    "regression": (diabetes.data, diabetes.target, "sklearn_hgb", hgb, "sklearn_ridge", {"alpha": 1.0}),
    "binary": (cancer.data, cancer.target.map({0: "malignant", 1: "benign"}), "lightgbm", lgbm,
               "sklearn_logreg", {"C": 1.0, "max_iter": 500}),
}
out = {}
for task, (X, y, family, params, other_family, other_params) in data.items():
    train = X.sample(frac=0.7, random_state=0)
    model = train_candidate(task, family, params, train, y[train.index], seed=0, task=task)
    other = train_candidate("other", other_family, other_params, train, y[train.index], seed=0, task=task)
    name = f"served-{task}"
    with mlflow.start_run() as run:
        uri = registry.log_model(model, train)
        version = registry.register(uri, name, run.info.run_id, {}).version
        other_uri = registry.log_model(other, train)
    buckets = np.quantile(y[train.index], [0.1, 0.25, 0.5, 0.75, 0.9]).tolist() if task == "regression" else None
    tag = build_bento(registered_model=name, version=version, service_name=name, metadata={"model_version": version},
                      schema=schema_from_frame(train, model.feature_columns), constraints=root / "constraints.txt",
                      task=task, classes=model.classes or None, value_buckets=buckets)
    holdout = home / f"{task}.parquet"
    X.drop(index=train.index).head(40).to_parquet(holdout)
    out[task] = {"tag": tag, "classes": model.classes, "buckets": buckets, "holdout": str(holdout),
                 "good": mlflow.artifacts.download_artifacts(uri, dst_path=str(home / task / "good")),
                 "other": mlflow.artifacts.download_artifacts(other_uri, dst_path=str(home / task / "other"))}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    home = tmp_path_factory.mktemp("served-tasks")
    out = build_in_subprocess(BUILD, home)
    return {task: {**info, "home": str(home / "bentoml")} for task, info in out.items()}


@pytest.fixture(scope="module", params=TASKS)
def served(request, built):
    """``(task, info, client)`` for one task's bento; pytest runs every test of a task before the next starts."""
    task, info = request.param, built[request.param]
    with (
        serve_bento(info["tag"], bentoml_home=info["home"], timeout_s=180) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield task, {**info, "url": server.url}, client


def _predict(task: str, info: dict, client: httpx.Client, n: int = 40) -> list[dict]:
    records = frame_to_records(pd.read_parquet(info["holdout"]).head(n))
    resp = client.post("/batch_predict", json={"records": records})
    assert resp.status_code == 200, resp.text
    assert resp.text == json.dumps(resp.json(), ensure_ascii=False)  # the fast writer writes plain JSON
    single = client.post("/predict", json={"records": records[:1]}).json()["predictions"]
    assert single == resp.json()["predictions"][:1]
    return resp.json()["predictions"]


def test_answers_follow_the_task(served):
    task, info, client = served
    predictions = _predict(task, info, client)
    assert {p["model_version"] for p in predictions} == {"1"}
    if task == "regression":
        assert all(list(p) == ["value", "model_version"] for p in predictions)
        values = [p["value"] for p in predictions]
        assert all(isinstance(v, float) for v in values) and len(set(values)) > 5  # a real model, not a constant
        assert min(values) > 0 and max(values) < 400  # diabetes progression scores
        return
    classes = info["classes"]
    for p in predictions:
        assert list(p) == ["label", "probability", "probabilities", "model_version"]
        assert list(p["probabilities"]) == classes  # keyed by class name, in class order
        assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-9)
    if task == "multiclass":
        assert classes == ["setosa", "versicolor", "virginica"]
        assert {p["label"] for p in predictions} == set(classes)  # the holdout has all three species
        for p in predictions:
            assert p["probability"] == p["probabilities"][p["label"]] == max(p["probabilities"].values())
    else:
        negative, positive = classes
        for p in predictions:  # today's binary answer, plus the probabilities object
            assert p["probabilities"] == {negative: 1.0 - p["probability"], positive: p["probability"]}
            assert p["label"] == (positive if p["probability"] >= 0.5 else negative)


def test_openapi_and_metadata_describe_the_tasks_answer(served):
    task, info, client = served
    meta = client.get("/metadata").json()
    assert (meta["task"], meta["classes"]) == (task, info["classes"])
    docs = client.get("/docs.json").json()
    prediction = docs["components"]["schemas"]["Prediction"]["properties"]
    if task == "regression":
        assert list(prediction) == ["value", "model_version"]
        assert "value" in docs["paths"]["/predict"]["post"]["description"]
    else:
        assert list(prediction) == ["label", "probability", "probabilities", "model_version"]
        assert prediction["label"]["enum"] == info["classes"]
        per_class = docs["components"]["schemas"]["Probabilities"]["properties"]
        assert list(per_class) == info["classes"]


def _samples(client: httpx.Client) -> list:
    from prometheus_client.parser import text_string_to_metric_families

    return [s for family in text_string_to_metric_families(client.get("/metrics").text) for s in family.samples]


def _total(samples: list, name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())


def test_metrics_carry_the_tasks_series(served):
    task, info, client = served
    before = _samples(client)
    predictions = _predict(task, info, client, n=25)  # 25 rows batched, then the first again alone
    after = _samples(client)

    def added(name: str, **labels: str) -> float:
        return _total(after, name, **labels) - _total(before, name, **labels)

    names = {s.name for s in after}
    if task == "regression":
        assert not any(n.startswith(("mlops_predictions", "mlops_low_confidence")) for n in names)  # no labels
        assert added("mlops_prediction_value_count") == 26
        buckets = info["buckets"]
        bounds = {s.labels["le"] for s in after if s.name == "mlops_prediction_value_bucket"}
        assert bounds == {*(repr(float(b)) for b in buckets), "+Inf"}
        median = repr(float(buckets[2]))
        below = sum(p["value"] <= buckets[2] for p in [*predictions, predictions[0]])
        assert added("mlops_prediction_value_bucket", le=median) == below
        return
    for label in info["classes"]:
        expected = sum(p["label"] == label for p in [*predictions, predictions[0]])
        assert added("mlops_predictions_total", label=label) == expected
    assert "mlops_low_confidence_predictions_total" in names
    assert not any(n.startswith("mlops_prediction_value") for n in names)


def test_infra_validation_passes_for_the_model_and_fails_for_another_naming_the_row(served):
    task, info, _ = served
    rows = pd.read_parquet(info["holdout"])
    good = validate_bento(info["tag"], rows, info["good"], p95_budget_ms=2000, url=info["url"])
    assert good.passed, good.reason
    assert good.task == task and good.errors == 0 and good.n_rows == len(rows)
    if task == "regression":
        assert good.max_value_diff <= 1e-6 and "values within" in good.reason
    else:
        assert good.max_prob_diff <= 1e-6 and good.label_mismatches == 0
    other = validate_bento(info["tag"], rows, info["other"], p95_budget_ms=2000, url=info["url"])
    assert not other.passed
    field = "value" if task == "regression" else "probability"
    assert f"first difference: single-record request, row 0: {field} " in other.reason, other.reason


def test_a_lightgbm_bento_ships_lightgbm_and_its_openmp_runtime(built):
    def bento(task: str) -> Path:
        name, version = built[task]["tag"].split(":")
        return Path(built[task]["home"]) / "bentos" / name / version

    lock = {line.partition("==")[0].lower(): line for line in (ROOT / "constraints.txt").read_text().splitlines()}
    for task in ("binary", "multiclass"):  # LightGBM models
        assert lock["lightgbm"] in (bento(task) / "env" / "python" / "requirements.txt").read_text().split()
        assert "libgomp1" in (bento(task) / "env" / "docker" / "Dockerfile").read_text()
    assert "lightgbm" not in (bento("regression") / "env" / "python" / "requirements.txt").read_text()
    assert "libgomp1" not in (bento("regression") / "env" / "docker" / "Dockerfile").read_text()
