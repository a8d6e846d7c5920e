"""Served traffic recorded by a real bento over HTTP and read back by the monitoring.

One bento (in a subprocess, so bentoml is imported with a temporary BENTOML_HOME): a multiclass
model on wine with cultivar names as labels and a text region with blanks, registered in a
temporary SQLite store. Served with `bentoml serve` and the environment `mlops serve` gives it
(``monitor_env``): with ``serve.monitor_sample`` 1 on two workers, ``read_served`` returns exactly
the records sent and the answers served; with 0 nothing is written.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from components.monitoring.served import read_served, served_sink, served_versions
from components.release.bento_server import serve_bento
from components.release.infra_validation import frame_to_records
from flows.cli.serve import monitor_env
from tests.conftest import build_in_subprocess

pytestmark = pytest.mark.slow
MODEL = "served-wine"

BUILD = """
import json, sys
from pathlib import Path
import mlflow
from components.release import registry
from components.release.package import build_bento
from components.serving.request_schema import schema_from_frame
from components.training.families import train_candidate
from tests.data.task_frames import wine_frame

root, home, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
registry.configure_tracking(home, experiment="tests")
frame = wine_frame(seed=0)
X, y = frame.drop(columns="cultivar"), frame["cultivar"]
train = X.sample(frac=0.7, random_state=0)
model = train_candidate("logreg", "sklearn_logreg", {"C": 1.0, "max_iter": 500}, train, y[train.index], seed=0,
                        task="multiclass")
with mlflow.start_run() as run:
    version = registry.register(registry.log_model(model, train), name, run.info.run_id, {}).version
tag = build_bento(registered_model=name, version=version, service_name=name, metadata={"model_version": version},
                  schema=schema_from_frame(train, model.feature_columns), constraints=root / "constraints.txt",
                  task="multiclass", classes=model.classes)
holdout = home / "holdout.parquet"
X.drop(index=train.index)[model.feature_columns].head(40).to_parquet(holdout)
print(json.dumps({"tag": tag, "version": version, "holdout": str(holdout)}))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    home = tmp_path_factory.mktemp("served-monitoring")
    return {**build_in_subprocess(BUILD, home, MODEL), "home": str(home / "bentoml")}


@pytest.fixture(scope="module")
def holdout(built) -> pd.DataFrame:
    frame = pd.read_parquet(built["holdout"])
    assert frame["region"].isna().any() and frame["region"].notna().any()  # blanks travel too
    return frame


def _metric(client: httpx.Client, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    samples = [s for f in text_string_to_metric_families(client.get("/metrics").text) for s in f.samples]
    return sum(s.value for s in samples if s.name == name)


def _send(client: httpx.Client, records: list[dict]) -> list[str]:
    """Ten single-record requests, then one batch of the rest; the labels served, in order."""
    labels = []
    for record in records[:10]:
        resp = client.post("/predict", json={"records": [record]})
        assert resp.status_code == 200, resp.text
        labels += [p["label"] for p in resp.json()["predictions"]]
    resp = client.post("/batch_predict", json={"records": records[10:]})
    assert resp.status_code == 200, resp.text
    return labels + [p["label"] for p in resp.json()["predictions"]]


def _read_when_written(sink: Path, rows: int, timeout_s: float = 20) -> tuple[pd.DataFrame, pd.Series]:
    """The writer thread records shortly after the answer goes out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if sink.is_dir():
            inputs, predictions = read_served(sink)
            if len(inputs) >= rows or time.monotonic() > deadline:
                return inputs, predictions
        elif time.monotonic() > deadline:
            raise AssertionError(f"{sink} was never created")
        time.sleep(0.2)


def test_sample_one_records_exactly_what_was_sent_and_served(built, holdout, tmp_path):
    env = {**monitor_env(tmp_path, 1.0), "MLOPS_SERVE_WORKERS": "2"}  # as `mlops serve` sets it
    records = frame_to_records(holdout)
    records = records[:10] + records[10:] * 3  # a batch of 90: the recorder's large-request path
    with (
        serve_bento(built["tag"], bentoml_home=built["home"], timeout_s=180, env=env) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        labels = _send(client, records)
        sink = served_sink(tmp_path, MODEL)
        inputs, predictions = _read_when_written(sink, len(records))
        recorded = _metric(client, "mlops_monitor_recorded_requests_total")
        errors = _metric(client, "mlops_monitor_record_errors_total")

    assert set(labels) <= {"barolo", "grignolino", "barbera"} and len(set(labels)) > 1
    assert list(inputs.columns) == list(holdout.columns)
    assert frame_to_records(inputs) == records  # values exact, blanks blank, in the order sent
    assert predictions.tolist() == labels
    assert served_versions(sink) == {built["version"]: len(records)}
    assert (recorded, errors) == (11, 0)  # requests
    assert len(list(sink.glob("*.jsonl"))) >= 1


def test_sample_zero_writes_nothing(built, holdout, tmp_path):
    env = monitor_env(tmp_path, 0.0)
    with (
        serve_bento(built["tag"], bentoml_home=built["home"], timeout_s=180, env=env) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        _send(client, frame_to_records(holdout))
        time.sleep(1.0)  # time a writer would have had
        assert "mlops_monitor_recorded_requests" not in client.get("/metrics").text
    assert not (tmp_path / "monitoring").exists()
