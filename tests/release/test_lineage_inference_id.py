"""`mlops lineage --inference-id`: from a scored row back to its batch, its version and the version's chain.

A real SQLite MLflow store in a throw-away project: a model trained on a small frame, logged and registered
as the pipeline does (lineage tags, a decision, a bento tag) and made @champion; batches scored by the real
``score_batch`` into the project's predictions/ folder, as `mlops predict` writes them.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from components import vocabulary as v
from components.data.contract_inference import infer_contract
from components.inference.batch import score_batch
from components.release import registry
from components.release.lineage import lineage_tags
from components.training.families import train_candidate
from flows.cli.main import main
from flows.runtime import EXIT_CONFIG, EXIT_NOTHING
from tests.training.task_data import make_frame

ROOT = Path(__file__).resolve().parents[2]
MODEL = "churn-model"


def _customers(frame: pd.DataFrame, first: int) -> pd.DataFrame:
    """``frame`` with a string key column of customer numbers from ``first`` on (the contract's key)."""
    return frame.assign(customer=[f"C-{n:04d}" for n in range(first, first + len(frame))])


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict:
    """A project whose @champion (v2) scored two batches that share customers C-0100 .. C-0149."""
    import mlflow

    root = tmp_path_factory.mktemp("lineage")
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    registry.configure_tracking(root, experiment="tests")
    train = make_frame("binary", 240, 0)
    model = train_candidate("hgb", "sklearn_hgb", {"learning_rate": 0.2, "max_iter": 20, "max_leaf_nodes": 8},
                            train.drop(columns="target"), train["target"], seed=0)  # fmt: skip
    drafted = infer_contract(_customers(train, 0), "target", name=MODEL, task="binary")
    columns = tuple(dataclasses.replace(c, feature=c.name != "customer", min=None, max=None, max_null_fraction=None)
                    for c in drafted.columns)  # fmt: skip
    contract = dataclasses.replace(drafted, columns=columns, keys=["customer"])
    tags = lineage_tags(dataset_md5="d" * 32, dataset_path="data/churn.parquet", git="abc123", params_hash="p1",
                        candidate="hgb", family="sklearn_hgb", task="binary")  # fmt: skip
    versions = []
    for _ in range(2):  # v1 then v2; v2 is the champion that scores
        with mlflow.start_run() as run:
            uri = registry.log_model(model, train.drop(columns="target"))
        extra = {v.TAG_DECISION: "promoted", v.TAG_DECISION_REASON: "beats the champion", v.TAG_BENTO: "churn:v2abc"}
        versions.append(registry.register(uri, MODEL, run.info.run_id, tags | extra).version)
    registry.set_alias(MODEL, "champion", versions[-1])

    info = {"name": MODEL, "version": versions[-1], "uri": f"models:/{MODEL}/{versions[-1]}", "alias": "champion",
            "task": "binary", "classes": model.classes}  # fmt: skip
    metas = []
    for name, first, seed in (("2026-12-01", 0, 1), ("2026-12-02", 100, 2)):
        batch = _customers(make_frame("binary", 150, seed).drop(columns="target"), first)
        path = root / "incoming" / f"{name}.parquet"
        path.parent.mkdir(exist_ok=True)
        batch.to_parquet(path)
        metas.append(score_batch(path, contract=contract, predict=model.predict_frame, model=info,
                                 out_dir=root / "predictions", chunk_rows=64))  # fmt: skip
    return {"root": root, "metas": metas, "version": versions[-1]}


def _cli(root: Path, *argv: str) -> int:
    return main(["--params", str(root / "params.yaml"), *map(str, argv)])


def test_an_id_prints_its_batch_row_prediction_version_and_the_rest_of_the_chain(project, capsys):
    root, (first, _), version = project["root"], project["metas"], project["version"]
    predictions = pd.read_parquet(first["predictions"])
    row = predictions.loc[predictions["inference_id"] == "C-0042"].iloc[0]

    assert _cli(root, "lineage", "--inference-id", "C-0042") == 0

    out = capsys.readouterr().out
    lines = {line[2:].split("  ", 1)[0].strip(): line[2:].split("  ", 1)[1].strip() for line in out.splitlines()}
    assert lines["inference id"] == "C-0042"
    assert lines["batch"] == f"{first['batch']['path']} md5 {first['batch']['md5']}"
    assert lines["batch row"] == "42" and lines["scored at"] == first["created"]
    assert lines["predictions"] == f"{first['predictions']} (row 42)"
    assert lines["metadata"] == first["metadata_path"]
    assert lines["prediction"] == f"label {row['label']!r}, probability {row['probability']:.6g}"
    assert lines["model version"] == f"{MODEL} v{version} (@champion)"
    # then the chain `mlops lineage --version` prints, in its order
    assert lines["bento"] == "churn:v2abc" and lines["dataset"] == f"data/churn.parquet md5 {'d' * 32}"
    assert lines["git commit"] == "abc123" and lines["decision"] == "promoted: beats the champion"
    keys = list(lines)
    assert keys.index("prediction") < keys.index("model version") < keys.index("bento") < keys.index("run")


def test_an_id_scored_in_two_batches_prints_both_newest_first(project, capsys):
    root, (first, second) = project["root"], project["metas"]

    assert _cli(root, "lineage", "--inference-id", "C-0120") == 0

    out = capsys.readouterr().out
    assert out.startswith("inference_id 'C-0120' was scored 2 times (newest first)")
    newest, oldest = out.split("scoring 2 of 2:")
    assert "scoring 1 of 2:" in newest and second["batch"]["path"] in newest and first["batch"]["path"] in oldest
    rows = [line.split()[-1] for line in out.splitlines() if line.strip().startswith("→ batch row")]
    assert rows == ["20", "120"]  # C-0120 is row 20 of the second batch, row 120 of the first


def test_an_unknown_id_is_one_line_naming_the_id_and_the_folder(project, capsys, tmp_path, monkeypatch):
    root = project["root"]
    assert _cli(root, "lineage", "--inference-id", "C-9999") == EXIT_NOTHING
    err = capsys.readouterr().err.strip()
    assert err == f"error: no prediction has inference_id 'C-9999' in {root / 'predictions'} (2 predictions files)"

    monkeypatch.chdir(tmp_path)  # --predictions is the shell's path, like `mlops predict --out`
    assert _cli(root, "lineage", "--inference-id", "C-0001", "--predictions", "elsewhere") == EXIT_NOTHING
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"in {tmp_path / 'elsewhere'} (it does not exist)" in err


def test_predictions_elsewhere_and_the_model_filter(project, capsys, tmp_path, monkeypatch):
    root = project["root"]
    moved = tmp_path / "archive"
    shutil.copytree(root / "predictions", moved)
    monkeypatch.chdir(tmp_path)
    assert _cli(root, "lineage", "--inference-id", "C-0003", "--predictions", "archive", "--model", MODEL) == 0
    assert str(moved) in capsys.readouterr().out

    assert _cli(root, "lineage", "--inference-id", "C-0003", "--model", "nope") == EXIT_NOTHING
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'nope'" in err and "registered: " in err
    assert _cli(root, "lineage", "--version", "1", "--predictions", "archive") == EXIT_CONFIG


def test_a_version_deleted_since_still_shows_the_batch(project, capsys, tmp_path):
    """Predictions outlive versions: the batch part is printed, the version said to be gone."""
    root, (first, _) = project["root"], project["metas"]
    folder = tmp_path / "old"
    folder.mkdir()
    source = Path(first["predictions"])
    frame = pd.read_parquet(source).assign(model_version="7", model_uri=f"models:/{MODEL}/7")
    frame.to_parquet(folder / source.name)
    meta = json.loads(Path(first["metadata_path"]).read_text())
    meta["model"] |= {"version": "7", "uri": f"models:/{MODEL}/7"}
    (folder / source.name).with_suffix(".json").write_text(json.dumps(meta))

    assert _cli(root, "lineage", "--inference-id", "C-0005", "--predictions", folder) == 0
    out = capsys.readouterr().out
    assert f"{MODEL} v7 (models:/{MODEL}/7; not in this registry)" in out and "batch row" in out
    assert "bento" not in out and "git commit" not in out
