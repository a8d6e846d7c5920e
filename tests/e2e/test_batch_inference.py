"""`mlops predict` end to end: a model trained and promoted by the real training flow scores a batch
through the real `batch-inference` flow (Prefect, MLflow on SQLite, GX), and a bad batch scores nothing."""

import json

import mlflow
import pandas as pd
import pytest

from components.data.dataset import read_source
from components.release import registry
from tests.conftest import FAST, make_project

pytestmark = pytest.mark.slow
MODEL = "breast-cancer-classifier"
# The flow as users run it, with fewer candidates: what is tested here is scoring, not choosing.
QUICK = [*FAST, "train.candidates.rf.enabled=false", "train.candidates.lgbm.enabled=false",
         "train.candidates.mlp.enabled=false"]  # fmt: skip


def _cli(*argv) -> int:
    from flows.cli.main import main

    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def project(tmp_path_factory, prefect_harness):
    from flows.training import training_pipeline

    root = make_project(tmp_path_factory.mktemp("batch"))
    result = training_pipeline(params_path=str(root / "params.yaml"), overrides=QUICK)
    assert result["aliases"] == ["champion"], result["decision"]
    batch = read_source("sklearn:breast_cancer").drop(columns=["target"])  # all 569 rows, no labels
    (root / "incoming").mkdir()
    batch.to_parquet(root / "incoming" / "2026-12-01.parquet")
    broken = batch.assign(**{"mean radius": batch["mean radius"].astype(str).where(batch.index != 7, "n/a!")})
    broken.to_parquet(root / "incoming" / "broken.parquet")
    return root


def test_predict_writes_predictions_and_metadata_naming_the_champion(project, capsys):
    params, data = project / "params.yaml", project / "incoming" / "2026-12-01.parquet"
    assert _cli("--params", params, "predict", "--data", data, "--chunk-rows", 200) == 0
    printed = capsys.readouterr().out
    registry.configure_tracking(project)
    version = registry.alias_version(MODEL, "champion")
    assert f"scored 569 of 569 rows with {MODEL} v{version}" in printed

    (meta_path,) = (project / "predictions").glob("*.json")
    meta = json.loads(meta_path.read_text())
    assert meta["status"] == "scored" and meta["model"]["version"] == version
    assert meta["model"]["uri"] == f"models:/{MODEL}/{version}" and meta["model"]["alias"] == "champion"
    assert meta["rows"] == {"read": 569, "scored": 569, "quarantined": 0}
    assert meta["contract"]["source"].endswith("contract/breast_cancer.yaml (stored with the run)")
    assert meta["drift"]["reference"].startswith(f"champion v{version}'s training data")
    assert {"resolve", "load_model", "validate", "score"} <= set(meta["timings"])

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
    assert _cli("--params", params, "predict", "--data", data) == 0
    assert len(list((project / "predictions").glob("*.parquet"))) == 2


def test_a_batch_with_a_blocking_violation_exits_4_and_writes_no_predictions(project, capsys):
    out = project / "rejected"
    code = _cli("--params", project / "params.yaml", "predict", "--data", project / "incoming" / "broken.parquet",
                "--out", out)  # fmt: skip
    assert code == 4
    assert "mean radius" in capsys.readouterr().err
    assert not list(out.glob("*.parquet*"))
    (meta_path,) = out.glob("*.json")
    assert json.loads(meta_path.read_text())["status"] == "rejected"


def test_an_unknown_model_or_no_champion_exits_5_with_one_line(project, capsys):
    params, data = project / "params.yaml", project / "incoming" / "2026-12-01.parquet"
    assert _cli("--params", params, "predict", "--data", data, "--model", "no-such-model") == 5
    assert "no-such-model" in capsys.readouterr().err
    registry.configure_tracking(project)
    version = registry.alias_version(MODEL, "champion")
    registry.delete_alias(MODEL, "champion")
    try:
        assert _cli("--params", params, "predict", "--data", data, "--out", project / "none") == 5
        err = capsys.readouterr().err
        assert f"error: model '{MODEL}' has no @champion version: nothing to score with" in err
        assert "Traceback" not in err  # checked before the flow starts: no failed flow run
        assert not (project / "none").exists()
    finally:
        registry.set_alias(MODEL, "champion", version)
