"""The retraining flow: data discovery, DVC versioning, skip/train decisions and retries.

Training itself is replaced by a tiny flow that registers a version (the real pipeline runs in
tests/e2e); everything else is real: Prefect test harness, MLflow on SQLite, git and DVC.
"""

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from prefect import flow

from components.data.dataset import file_md5
from components.fingerprint import dataset_fingerprint
from components.release import registry
from components.vocabulary import TAG_FINGERPRINT
from flows import retraining as rt
from tests.conftest import make_project

MODEL = "breast-cancer-classifier"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def _sh(root: Path, *args: str) -> str:
    cmd = [sys.executable, "-m", "dvc", *args[1:]] if args[0] == "dvc" else list(args)
    return subprocess.run(cmd, cwd=root, check=True, capture_output=True, text=True, timeout=300).stdout


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A project copy under git and DVC (local remote), data added and committed."""
    for key, value in {**GIT_ENV, "DVC_NO_ANALYTICS": "1"}.items():
        monkeypatch.setenv(key, value)
    root = make_project(tmp_path / "project", rows=200)
    _sh(root, "git", "init", "-q")
    _sh(root, "dvc", "init", "-q")
    _sh(root, "dvc", "remote", "add", "-d", "local", str(tmp_path / "remote"))
    _sh(root, "dvc", "add", "-q", "data")
    (root / ".gitignore").write_text("/mlflow.db\n/mlartifacts/\n/data/\n")
    _sh(root, "git", "add", "-A")
    _sh(root, "git", "commit", "-q", "-m", "init")
    own_store(monkeypatch, root)
    return root


def own_store(monkeypatch, root: Path) -> None:
    """Pin MLflow to this project's store: mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI,
    so an earlier test's project would otherwise win in configure_tracking."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")


def _drop_csv(directory: Path, name: str, rows: int, seed: int, mtime: float | None = None) -> Path:
    from components.data.dataset import read_source

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    read_source("sklearn:breast_cancer").sample(n=rows, random_state=seed).to_csv(path, index=False)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


CALLS: list = []


@flow(name="training-pipeline")
def fake_training(
    params_path: str = "params.yaml",
    overrides: list[str] | None = None,
    data_path: str | None = None,
    contract: str | None = None,
) -> dict:
    """Registers a version tagged like the real pipeline's and makes it champion."""
    from mlflow.exceptions import MlflowException

    root = Path(params_path).resolve().parent
    registry.configure_tracking(root)
    client = registry.client()
    with contextlib.suppress(MlflowException):
        client.create_registered_model(MODEL)
    md5 = file_md5(root / "data" / "dataset.parquet")
    mv = client.create_model_version(MODEL, source=(root / "model").as_uri(), tags={"dataset_md5": md5})
    client.set_registered_model_alias(MODEL, "champion", mv.version)
    CALLS.append(overrides)
    return {"version": str(mv.version), "aliases": ["champion"], "dataset_md5": md5}


@pytest.fixture
def fake_train(monkeypatch, tmp_path):
    """Fake training; the code hash covers a probe module, not the live (concurrently edited) tree."""
    CALLS.clear()
    monkeypatch.setattr(rt, "training_pipeline", fake_training)
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "retrain_code_probe.py").write_text("STEP = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    monkeypatch.setattr(rt, "TRAINING_CODE", ["retrain_code_probe"])
    return CALLS


def test_newest_incoming_file_wins(tmp_path):
    now = time.time()
    for name, age in (("old.csv", 100), ("new.parquet", 0), (".partial.csv", -10), ("notes.txt", -20)):
        (tmp_path / name).write_text("x\n1\n")
        os.utime(tmp_path / name, (now - age, now - age))
    assert rt.newest_data_file(tmp_path) == tmp_path / "new.parquet"
    assert rt.newest_data_file(tmp_path / "missing") is None


def test_an_incoming_export_is_split_by_the_contracts_reading_options(tmp_path):
    """A ';'-separated drop with decimal commas is staged as its columns and numbers, not as one text column."""
    from components.data.contract import ReadOptions
    from components.data.dataset import read_source

    frame = read_source("sklearn:breast_cancer").head(40)
    (tmp_path / "incoming").mkdir()
    frame.to_csv(tmp_path / "incoming" / "drop.csv", index=False, sep=";", decimal=",")
    reading = ReadOptions(delimiter=";", decimal=",")
    staged, source = rt.find_data_task.fn(tmp_path / "incoming", tmp_path / "dataset.parquet", tmp_path, reading)
    assert source == tmp_path / "incoming" / "drop.csv"
    pd.testing.assert_frame_equal(pd.read_parquet(staged), frame.reset_index(drop=True))


def test_dvc_target_is_the_tracked_directory(tmp_path):
    (tmp_path / "data.dvc").write_text("outs: []\n")
    assert rt.dvc_target(tmp_path, tmp_path / "data" / "dataset.parquet") == "data"
    assert rt.dvc_target(tmp_path, tmp_path / "x" / "y.parquet") == "x/y.parquet"


def test_new_data_is_ingested_added_pushed_and_committed_alone(repo, tmp_path):
    source = _drop_csv(tmp_path / "incoming", "drop.csv", 150, 7)
    staged = rt.find_data_task.fn(source.parent, repo / "data" / "dataset.parquet", tmp_path)[0]
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text() + "\n")  # unrelated change
    info = rt.version_data_task.fn(repo, source, repo / "data" / "dataset.parquet", file_md5(staged))
    assert info == {"tracked": True, "target": "data", "dvc_file": "data.dvc", "remote": "local"}
    rt.dvc_push_task.fn(repo, "data.dvc")
    sha = rt.commit_data_task.fn(repo, "data.dvc", "data: new drop")

    recorded = yaml.safe_load((repo / "data.dvc").read_text())["outs"][0]["md5"]
    assert recorded == dataset_fingerprint(repo / "data") + ".dir"
    md5 = file_md5(repo / "data" / "dataset.parquet")
    assert md5 == file_md5(staged) and (tmp_path / "remote" / "files" / "md5" / md5[:2] / md5[2:]).is_file()
    assert sha == _sh(repo, "git", "rev-parse", "HEAD").strip()
    assert _sh(repo, "git", "show", "--name-only", "--format=", "HEAD").split() == ["data.dvc"]
    assert "params.yaml" in _sh(repo, "git", "status", "--porcelain")  # not swept into the commit
    assert rt.commit_data_task.fn(repo, "data.dvc", "again") is None  # nothing new to commit
    _sh(repo, "dvc", "remote", "default", "--unset")
    unchanged = rt.version_data_task.fn(repo, None, repo / "data" / "dataset.parquet", md5)
    assert unchanged["remote"] is None  # the flow then skips the push and says so


def _artifact(flow_run_id) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return next(a.data for a in arts if a.key == "retraining-summary")


def test_trains_on_new_data_then_skips_until_something_changes(repo, tmp_path, fake_train, prefect_harness):
    params = str(repo / "params.yaml")
    _drop_csv(repo / "incoming", "drop.csv", 150, 3)

    first = rt.retraining(params_path=params, incoming_dir="incoming", commit_data=True, return_state=True)
    out = first.result()
    assert out["action"] == "train" and out["reason"].startswith("no champion") and len(fake_train) == 1
    assert out["dvc"]["commit"] and out["dvc"]["pushed"]
    registry.configure_tracking(repo)
    tags = registry.client().get_model_version(MODEL, "1").tags
    assert tags[TAG_FINGERPRINT] == out["inputs"]["fingerprint"] and tags["retraining.reason"] == out["reason"]
    assert tags["dataset_md5"] == file_md5(repo / "data" / "dataset.parquet") == out["inputs"]["dataset_md5"]
    assert "# Retraining: trained" in _artifact(first.state_details.flow_run_id)

    second = rt.retraining(params_path=params, incoming_dir="incoming", return_state=True)
    out = second.result()
    assert out["action"] == "skip" and "nothing changed: champion v1" in out["reason"] and len(fake_train) == 1
    assert out["dvc"] is None and out["version"] is None
    summary = _artifact(second.state_details.flow_run_id)
    assert "# Retraining: skipped" in summary and "nothing changed" in summary

    out = rt.retraining(params_path=params, incoming_dir="incoming", overrides=["train.candidates.hgb.max_iter=7"])
    assert out["action"] == "train" and "params hash" in out["reason"] and "dataset md5" not in out["reason"]
    assert fake_train[-1] == ["train.candidates.hgb.max_iter=7"] and out["version"] == "2"
    both = ["train.candidates.hgb.max_iter=7", "serve.port=3100"]
    serve_only = rt.retraining(params_path=params, incoming_dir="incoming", overrides=both)
    assert serve_only["action"] == "skip" and "champion v2" in serve_only["reason"]  # serve.* is not training

    (tmp_path / "code" / "retrain_code_probe.py").write_text("STEP = 2\n")
    out = rt.retraining(params_path=params, incoming_dir="incoming", overrides=both[:1])
    assert out["action"] == "train" and out["reason"].count("->") == 1 and "code hash" in out["reason"]


def test_registry_outage_is_retried_and_the_run_completes(tmp_path, fake_train, monkeypatch, prefect_harness):
    """The registry read fails twice (server unreachable), the task's retries carry the run through."""
    project = make_project(tmp_path / "project", rows=150)
    own_store(monkeypatch, project)
    real, calls = rt.read_registry, []

    def flaky(*args, **kwargs):
        calls.append(time.monotonic())
        if len(calls) <= 2:
            raise ConnectionError("tracking server unreachable (injected)")
        return real(*args, **kwargs)

    monkeypatch.setattr(rt, "read_registry", flaky)
    out = rt.retraining(params_path=str(project / "params.yaml"))
    assert len(calls) == 3 and calls[2] - calls[0] >= 2 * 0.7 + 5 * 0.7  # the configured backoff, minus jitter
    assert out["action"] == "train" and out["version"] == "1"
    assert out["dvc"] == {"tracked": False, "note": "not a DVC repository: the dataset was not versioned"}


def test_missing_data_fails_with_the_how_to(tmp_path, prefect_harness):
    from components.data.dataset import DataNotFoundError

    project = make_project(tmp_path / "project", rows=150)
    (project / "data" / "dataset.parquet").unlink()
    with pytest.raises(DataNotFoundError, match="dvc pull"):
        rt.retraining(params_path=str(project / "params.yaml"), incoming_dir="incoming")


def test_summary_markdown_names_inputs_and_outcome():
    r = {
        "action": "skip",
        "reason": "nothing changed",
        "source": "data/dataset.parquet",
        "inputs": {"dataset_md5": "d", "params_hash": "p", "code_hash": "c", "fingerprint": "f"},
        "champion": {"version": "4", "tags": {"dataset_md5": "d", "fingerprint": "f"}},
        "registered_model": MODEL,
        "dvc": None,
        "version": None,
        "adopted": "4",
        "secrets_loaded": ["X_TOKEN"],
    }
    md = rt.render_markdown(r)
    assert "# Retraining: skipped" in md and "| dataset_md5 | `d` | `d` |" in md and "champion v4" in md
    assert "recorded the fingerprint on champion v4" in md and "X_TOKEN (values not shown)" in md
