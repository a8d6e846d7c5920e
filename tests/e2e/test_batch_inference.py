"""`mlops predict` end to end: a model trained and promoted by the real training flow scores a batch
through the real `batch-inference` flow (Prefect, MLflow on SQLite, GX), and a bad batch scores nothing.
Each scored batch gets a drift report beside its predictions, on the version's model run in MLflow
and as a Prefect artifact."""

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from components.data.dataset import read_source
from components.monitoring import reference_scores
from components.release import registry
from tests.conftest import TWO_CANDIDATES, cli, make_project

pytestmark = pytest.mark.slow
MODEL = "breast-cancer-classifier"
TRAIN_ROWS = 300  # the champion's training data, its drift reference


@pytest.fixture(scope="module")
def project(tmp_path_factory, prefect_harness):
    from flows.training import training_pipeline

    root = make_project(tmp_path_factory.mktemp("batch"), rows=TRAIN_ROWS)
    result = training_pipeline(params_path=str(root / "params.yaml"), overrides=TWO_CANDIDATES)
    assert result["aliases"] == ["champion"], result["decision"]
    batch = read_source("sklearn:breast_cancer").drop(columns=["target"])  # all 569 rows, no labels
    (root / "incoming").mkdir()
    batch.to_parquet(root / "incoming" / "2026-12-01.parquet")
    broken = batch.assign(**{"mean radius": batch["mean radius"].astype(str).where(batch.index != 7, "n/a!")})
    broken.to_parquet(root / "incoming" / "broken.parquet")
    # The larger tumours only: a selection that shifts most size and shape features, within the contract's bounds.
    batch[batch["mean radius"] > batch["mean radius"].median()].to_parquet(root / "incoming" / "big-tumours.parquet")
    return root


def metadata_files(folder):
    return [p for p in folder.glob("*.json") if not p.name.endswith(".drift.json")]


def test_predict_writes_predictions_and_metadata_naming_the_champion(project, capsys):
    params, data = project / "params.yaml", project / "incoming" / "2026-12-01.parquet"
    assert cli("--params", params, "predict", "--data", data, "--chunk-rows", 200) == 0
    printed = capsys.readouterr().out
    registry.configure_tracking(project)
    version = registry.alias_version(MODEL, "champion")
    assert f"scored 569 of 569 rows with {MODEL} v{version}" in printed
    assert "drift:       no dataset drift: " in printed and ".drift.html (and .json; logged to MLflow runs:/" in printed

    (meta_path,) = metadata_files(project / "predictions")
    meta = json.loads(meta_path.read_text())
    assert meta["status"] == "scored" and meta["model"]["version"] == version
    assert meta["model"]["uri"] == f"models:/{MODEL}/{version}" and meta["model"]["alias"] == "champion"
    assert meta["rows"] == {"read": 569, "scored": 569, "quarantined": 0}
    assert meta["contract"]["source"].endswith("contract/breast_cancer.yaml (stored with the run)")
    assert meta["drift"]["reference"].startswith(f"champion v{version}'s training data")
    assert {"resolve", "load_model", "validate", "score"} <= set(meta["timings"])
    # The release stored the version's answers on its drift reference: the first batch found them (no cache).
    stored = mlflow.artifacts.download_artifacts(f"runs:/{meta['model']['model_run_id']}/{reference_scores.ARTIFACT}")
    assert len(pd.read_parquet(stored)) == TRAIN_ROWS and not (project / "predictions" / ".cache").exists()

    predictions = pd.read_parquet(meta["predictions"])
    assert list(predictions.columns) == ["inference_id", "batch_row", "model_version", "model_uri", "label",
                                         "probability"]  # fmt: skip
    assert len(predictions) == 569 and predictions["inference_id"].is_unique
    assert (predictions["model_version"] == version).all()
    # the same answers as the registered pyfunc on the same rows
    pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL}/{version}")
    expected = pyfunc.predict(pd.read_parquet(project / "incoming" / "2026-12-01.parquet"))
    pd.testing.assert_frame_equal(predictions[["label", "probability"]], expected, check_dtype=False)

    # scoring the same batch again keeps the first files and adds new ones
    assert cli("--params", params, "predict", "--data", data) == 0
    assert len(list((project / "predictions").glob("*.parquet"))) == 2


def test_a_batch_with_a_blocking_violation_exits_4_and_writes_no_predictions(project, capsys):
    out = project / "rejected"
    code = cli("--params", project / "params.yaml", "predict", "--data", project / "incoming" / "broken.parquet",
                "--out", out)  # fmt: skip
    assert code == 4
    assert "mean radius" in capsys.readouterr().err
    assert not list(out.glob("*.parquet*"))
    (meta_path,) = out.glob("*.json")  # rejected in its first chunk: no drift report, and the metadata says why
    meta = json.loads(meta_path.read_text())
    assert meta["status"] == "rejected" and meta["drift"]["verdict"].startswith("skipped: batch rejected")


def test_an_unknown_model_or_no_champion_exits_5_with_one_line(project, capsys):
    params, data = project / "params.yaml", project / "incoming" / "2026-12-01.parquet"
    assert cli("--params", params, "predict", "--data", data, "--model", "no-such-model") == 5
    assert "no-such-model" in capsys.readouterr().err
    registry.configure_tracking(project)
    version = registry.alias_version(MODEL, "champion")
    registry.delete_alias(MODEL, "champion")
    try:
        assert cli("--params", params, "predict", "--data", data, "--out", project / "none") == 5
        err = capsys.readouterr().err
        assert f"error: model '{MODEL}' has no @champion version: nothing to score with" in err
        assert "Traceback" not in err  # checked before the flow starts: no failed flow run
        assert not (project / "none").exists()
    finally:
        registry.set_alias(MODEL, "champion", version)


def _drift_artifacts(flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    wanted = ArtifactFilter(
        key=ArtifactFilterKey(any_=["drift-report"]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
    )
    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=wanted)


@pytest.mark.parametrize("batch,drifted", [("2026-12-01.parquet", False), ("big-tumours.parquet", True)])
def test_each_batch_gets_a_drift_report_beside_it_in_mlflow_and_in_prefect(project, batch, drifted):
    """The report compares the batch with the champion's own training data; it is written beside the
    predictions, logged on the version's model run under monitoring/<batch>, tagged on the version,
    and shown as the flow run's `drift-report` artifact."""
    from flows.batch_inference import batch_inference

    out = project / f"monitored-{drifted}"
    params, data = str(project / "params.yaml"), str(project / "incoming" / batch)
    state = batch_inference(data=data, out=str(out), params_path=params, return_state=True)
    meta = state.result()
    drift, report = meta["drift"], meta["drift_report"]
    assert report["dataset_drift"] is drifted and drift["dataset_drift"] is drifted
    assert drift["drift_share"] == 0.5 and (drift["share_drifted"] > 0.5) is drifted
    assert drift["prediction_drift"] is drifted  # more malignant answers among the larger tumours
    assert report["n_columns"] == 30 and "target" not in [c["column"] for c in report["columns"]]
    assert {c["statistic"] for c in report["columns"]} == {"ks_p_value"}  # 300 reference rows: tests, not distances

    base = Path(meta["metadata_path"]).stem
    html, json_file = Path(drift["report"]["html"]), Path(drift["report"]["json"])
    assert (html.name, json_file.name) == (f"{base}.drift.html", f"{base}.drift.json") and html.parent == out
    assert json.loads(json_file.read_text())["share_drifted"] == report["share_drifted"]
    assert json.loads(Path(meta["metadata_path"]).read_text())["drift"]["report"] == drift["report"]

    registry.configure_tracking(project)
    client = registry.client()
    mv = client.get_model_version(MODEL, meta["model"]["version"])
    assert mv.run_id == meta["model"]["model_run_id"]
    logged = {Path(a.path).name for a in client.list_artifacts(mv.run_id, f"monitoring/{base}")}
    assert logged == {html.name, json_file.name} and drift["mlflow"] == f"runs:/{mv.run_id}/monitoring/{base}"
    assert mv.tags["monitor.last_batch"] == base
    assert float(mv.tags["monitor.last_drift_share"]) == pytest.approx(report["share_drifted"])

    (artifact,) = _drift_artifacts(state.state_details.flow_run_id)
    assert artifact.type == "markdown" and "| column | kind | statistic |" in artifact.data
    assert "| mean radius | numeric | ks_p_value |" in artifact.data


def _drift_without_time(meta: dict) -> dict:
    report = json.loads(Path(meta["drift"]["report"]["json"]).read_text())
    return report | {"context": {k: v for k, v in report["context"].items() if k != "created"}}


def test_predict_on_dask_gives_the_local_results_and_leaves_no_process_behind(project, capsys):
    """`batch.parallel.engine: dask` in the params: the flow starts a LocalCluster of 2 workers while the model
    loads, scores the chunks on it, and stops it before `mlops predict` returns."""
    import psutil
    import yaml

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["batch"]["parallel"] = {"engine": "dask", "address": None, "n_workers": 2}
    (project / "params-dask.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    data = project / "incoming" / "big-tumours.parquet"
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    metas = {}
    for engine, name in (("local", "params.yaml"), ("dask", "params-dask.yaml")):
        out = project / f"on-{engine}"
        assert cli("--params", project / name, "predict", "--data", data, "--out", out, "--chunk-rows", 100) == 0
        (meta_path,) = metadata_files(out)
        metas[engine] = json.loads(meta_path.read_text())
    capsys.readouterr()
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before and p.is_running()]
    assert not [p for p in left if p.status() != psutil.STATUS_ZOMBIE], [p.cmdline() for p in left]

    local, dask = metas["local"], metas["dask"]
    assert dask["batch"]["parallel"] == {"engine": "dask", "n_workers": 2}
    assert local["batch"]["parallel"] == {"engine": "local"}
    pd.testing.assert_frame_equal(pd.read_parquet(dask["predictions"]), pd.read_parquet(local["predictions"]))
    assert dask["rows"] == local["rows"] and dask["rows"]["scored"] > 200  # three chunks or more
    assert _drift_without_time(dask) == _drift_without_time(local) and dask["drift"]["dataset_drift"] is True
