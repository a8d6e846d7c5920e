"""`mlops monitor` end to end in one process: a champion trained by the real training flow, a batch
scored by the real `batch-inference` flow, then late labels (and recorded traffic) checked against it
through the real `monitor` flow, MLflow on SQLite and Prefect's test API (events included)."""

import json
from datetime import UTC, datetime

import pandas as pd
import pytest

from components.data.dataset import read_source
from components.monitoring import alarms
from components.release import registry
from tests.conftest import TWO_CANDIDATES, cli, make_project

pytestmark = pytest.mark.slow
MODEL = "breast-cancer-classifier"


@pytest.fixture(scope="module")
def project(tmp_path_factory, prefect_harness):
    from flows.training import training_pipeline

    root = make_project(tmp_path_factory.mktemp("monitor"))
    result = training_pipeline(params_path=str(root / "params.yaml"), overrides=TWO_CANDIDATES)
    assert result["aliases"] == ["champion"], result["decision"]
    source = read_source("sklearn:breast_cancer")
    (root / "incoming").mkdir()
    source.drop(columns=["target"]).to_csv(root / "incoming" / "2026-12-01.csv", index=False)
    assert cli("--params", root / "params.yaml", "predict", "--data", root / "incoming" / "2026-12-01.csv") == 0
    (meta_path,) = (p for p in (root / "predictions").glob("*.json") if not p.name.endswith(".drift.json"))
    scored = pd.read_parquet(json.loads(meta_path.read_text())["predictions"])
    truth = scored.assign(target=source["target"].to_numpy()[scored["batch_row"]])  # what arrives later
    return {"root": root, "truth": truth, "meta": json.loads(meta_path.read_text())}


def test_late_labels_join_and_compare_with_the_versions_test_metrics(project, capsys, tmp_path):
    root, truth = project["root"], project["truth"]
    late = truth.head(400)[["inference_id", "target"]]
    late = pd.concat([late, pd.DataFrame({"inference_id": ["not-scored-1", "not-scored-2"], "target": [0, 1]})])
    late.to_csv(tmp_path / "labels.csv", index=False)

    assert cli("--params", root / "params.yaml", "monitor", "--labels", tmp_path / "labels.csv") == 0
    out = capsys.readouterr().out
    assert "402 labelled ids, 400 joined" in out
    assert "missing: 2 labelled ids have no prediction (e.g. not-scored-1, not-scored-2)" in out
    assert "extra:   169 predictions in the same files have no label" in out
    version = project["meta"]["model"]["version"]
    assert f"version {version} (binary, 400 labelled rows)" in out
    assert "roc_auc" in out and "<- primary" in out and "alarm:   none" in out

    md5 = project["meta"]["batch"]["md5"]
    kept = pd.read_parquet(root / "monitoring" / "labelled" / f"{md5}.parquet")
    batch = pd.read_csv(root / "incoming" / "2026-12-01.csv")
    assert len(kept) == 400 and set(batch.columns) | {"target", "batch_row"} == set(kept.columns)
    row = kept.set_index("batch_row").sort_index().iloc[0]
    assert row["mean radius"] == batch.loc[row.name, "mean radius"]
    assert row["target"] == truth.set_index("batch_row").loc[row.name, "target"]


def test_a_metric_drop_alarms_once_within_the_cooldown(project, capsys, tmp_path):
    root, truth = project["root"], project["truth"]
    flipped = truth.assign(target=1 - truth["target"])[["inference_id", "target"]]  # the world turned around
    flipped.to_parquet(tmp_path / "flipped.parquet")
    args = ("--params", root / "params.yaml", "monitor", "--labels", tmp_path / "flipped.parquet")

    assert cli(*args) == 0  # an alarm is not a failure: the event is the signal
    out = capsys.readouterr().out
    assert "ALARM:   realized roc_auc" in out and "event mlops.model.drift emitted (id " in out
    assert cli(*args) == 0
    assert "no event: cooldown since the event of" in capsys.readouterr().out

    registry.configure_tracking(root)
    version = project["meta"]["model"]["version"]
    recorded = json.loads(registry.client().get_model_version(MODEL, version).tags[alarms.TAG_LAST_ALARM])
    assert recorded["kind"] == "metric" and recorded["suppressed_by"] and not recorded["emitted"]
    assert alarms.last_event(MODEL) is not None


def test_recorded_traffic_gets_a_drift_report_under_monitoring_served(project, capsys):
    from components.serving.traffic_recorder import sink_name

    root = project["root"]
    version = project["meta"]["model"]["version"]
    served = read_source("sklearn:breast_cancer").drop(columns=["target"]).head(200)
    served = served * 1.25  # every measurement a quarter larger: a new scanner
    record = {"time": datetime.now(UTC).isoformat(), "model": MODEL, "model_version": version, "rows": len(served),
              "inputs": {c: served[c].tolist() for c in served.columns}, "predictions": [1] * len(served)}  # fmt: skip
    sink = root / "monitoring" / "served" / sink_name(MODEL)
    sink.mkdir(parents=True)
    (sink / "20261201T000000Z-1.jsonl").write_text(json.dumps(record) + "\n")

    assert cli("--params", root / "params.yaml", "monitor", "--served") == 0
    out = capsys.readouterr().out
    assert f"served:  200 recorded rows of {MODEL} v{version}" in out
    assert "drift:   dataset drift" in out and "ALARM:" in out
    assert list((root / "monitoring" / "served").glob(f"{sink_name(MODEL)}-v{version}-*.drift.html"))


def test_nothing_to_check_exits_5(project, capsys, tmp_path):
    root = project["root"]
    pd.DataFrame({"inference_id": ["nobody"], "target": [1]}).to_csv(tmp_path / "l.csv", index=False)
    assert cli("--params", root / "params.yaml", "monitor", "--labels", tmp_path / "l.csv") == 5
    assert "no labelled inference_id of l.csv is among the 569 predictions" in capsys.readouterr().err
    empty = tmp_path / "empty"
    assert cli("--params", root / "params.yaml", "monitor", "--labels", tmp_path / "l.csv", "--predictions", empty) == 5
    assert f"no predictions of {MODEL} in {empty}" in capsys.readouterr().err
    assert cli("--params", root / "params.yaml", "monitor", "--labels", tmp_path / "missing.csv") == 3
