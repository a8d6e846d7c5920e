"""The DVC driver end to end in temporary git repos.

Parity with the Prefect flow on the same data and params, incremental re-runs,
release on purpose, and dataset versions pushed to and pulled from a local remote.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from components.config import apply_overrides, load_raw
from components.data.dataset import file_md5, read_source, write_parquet
from tests.conftest import FAST, ROOT, make_project

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
CANDIDATES = ("logreg", "hgb", "ridge", "rf", "lgbm", "mlp")  # params.yaml's, ridge is regression-only
PIPELINE = {"ingest", "validate", "split", *(f"train@{c}" for c in CANDIDATES), "evaluate"}
ENV = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="true",
           GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
           GIT_COMMITTER_EMAIL="t@example.com")  # fmt: skip


def sh(cwd: Path, *cmd: str, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600, check=False)
    if ok and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def dvc(cwd: Path, *args: str, ok: bool = True) -> str:
    proc = sh(cwd, str(BIN / "dvc"), *args, ok=ok)
    return proc.stdout + proc.stderr


def git(cwd: Path, *args: str) -> str:
    return sh(cwd, "git", *args).stdout.strip()


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def set_params(root: Path, overrides: list[str]) -> None:
    raw = apply_overrides(load_raw(root / "params.yaml"), overrides)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def init_repo(root: Path) -> None:
    git(root, "init", "-q")
    dvc(root, "init", "-q")
    dvc(root, "remote", "add", "-d", "local", ".dvc-remote")  # as the project: a folder beside .dvc/


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A copy of the project on a 200-row sample with FAST params, after one `dvc repro`."""
    root = make_project(tmp_path_factory.mktemp("dvc") / "repo", rows=200)
    for name in ("components", "flows"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(ROOT / name, root / name)
    set_params(root, FAST)
    init_repo(root)
    dvc(root, "add", "-q", "data")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "project")
    first = dvc(root, "repro")
    git(root, "add", "dvc.lock")
    git(root, "commit", "-qm", "pipeline run")
    return root, first


def outputs(root: Path) -> dict:
    out = root / "runs" / "dvc"
    return json.loads((out / "evaluate" / "result.json").read_text()) | {
        "test_json": json.loads((out / "metrics" / "test.json").read_text()),
        # a disabled candidate (ridge: regression-only) leaves an empty metrics file for DVC
        "val_json": {p.stem: m for p in (out / "metrics" / "val").glob("*.json") if (m := json.loads(p.read_text()))},
    }


def test_repro_runs_the_pipeline_but_never_release(repo):
    root, first = repo
    assert ran(first) == PIPELINE
    assert "release" not in ran(dvc(root, "repro"))


def test_repro_and_the_flow_give_the_same_metrics_and_choice(repo, prefect_harness):
    from flows.training import training_pipeline

    root, _ = repo
    summary = training_pipeline(params_path=str(root / "params.yaml"))
    got = outputs(root)
    assert summary["chosen"] == got["chosen"]
    assert summary["candidates"] == got["candidates"] == got["val_json"]
    assert summary["test_metrics"] == got["test_metrics"] == got["test_json"]


def test_noop_repro_runs_nothing(repo):
    root, _ = repo
    start = time.perf_counter()
    out = dvc(root, "repro")
    assert ran(out) == set() and "up to date" in out
    assert time.perf_counter() - start < 60  # benchmarks/dvc_noop.py measures the real number


def test_hgb_change_reruns_only_hgb_and_evaluate_and_reverting_restores_the_lock(repo):
    root, _ = repo
    lock = (root / "dvc.lock").read_bytes()
    set_params(root, ["train.candidates.hgb.learning_rate=0.05"])
    status = json.loads(sh(root, str(BIN / "dvc"), "status", "--json").stdout)
    assert set(status) == {"train@hgb"}
    assert ran(dvc(root, "repro")) == {"train@hgb", "evaluate"}
    assert (root / "dvc.lock").read_bytes() != lock
    set_params(root, ["train.candidates.hgb.learning_rate=0.1"])
    out = dvc(root, "repro")  # back to the committed params: outputs come back from the run cache
    assert ran(out) == set() and "is cached" in out
    assert (root / "dvc.lock").read_bytes() == lock


def test_a_forced_rerun_of_a_torch_candidate_gives_the_same_bytes(repo):
    root, _ = repo
    lock = (root / "dvc.lock").read_bytes()
    assert ran(dvc(root, "repro", "-f", "-s", "train@mlp")) == {"train@mlp"}
    assert (root / "dvc.lock").read_bytes() == lock  # so dvc.lock reproduces on a fresh clone


def test_fresh_clone_pulls_the_outputs_and_is_up_to_date(repo, tmp_path):
    root, _ = repo
    dvc(root, "push", "-q")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(root), str(clone))
    dvc(clone, "remote", "modify", "--local", "local", "url", str(root / ".dvc-remote"))
    dvc(clone, "pull", "-q")
    assert json.loads(sh(clone, str(BIN / "dvc"), "status", "--json").stdout) == {}
    assert outputs(clone) == outputs(root)


def test_release_on_purpose_gates_registers_and_tags_the_evaluated_model(repo):
    from components.release import registry

    root, _ = repo
    yaml_before = (root / "dvc.yaml").read_bytes()
    proc = sh(root, str(BIN / "python"), "-m", "flows.stages", "release")
    record = json.loads((root / "runs" / "dvc" / "release" / "release.json").read_text())
    registry.configure_tracking(root)
    tags = registry.client().get_model_version("breast-cancer-classifier", record["version"]).tags
    ingest = json.loads((root / "runs" / "dvc" / "ingest" / "dataset.json").read_text())
    assert tags["driver"] == "dvc" and tags["dataset_md5"] == ingest["md5"] == record["dataset_md5"]
    assert tags["candidate"] == outputs(root)["chosen"] and tags["decision"] in ("promote", "keep")
    assert "gate.decision" in tags and tags["completed"] == "true", proc.stderr[-2000:]
    assert (root / "dvc.yaml").read_bytes() == yaml_before

    set_params(root, ["train.candidates.hgb.learning_rate=0.07"])  # evaluated outputs are now stale
    try:
        stale = sh(root, str(BIN / "python"), "-m", "flows.stages", "release", ok=False)
    finally:
        set_params(root, ["train.candidates.hgb.learning_rate=0.1"])
    assert stale.returncode == 5 and "dvc repro" in stale.stderr


def test_a_dvc_release_and_a_flow_run_give_the_same_version(repo, prefect_harness, tmp_path, monkeypatch):
    """Both drivers over the same data and params, each against an empty registry: the same tag keys,
    gate decision, metrics and infra validation (the DVC release runs the flow's own release steps)."""
    from components.release import registry
    from flows.training import training_pipeline

    root, _ = repo
    stores = {driver: f"sqlite:///{tmp_path / driver}.db" for driver in ("prefect", "dvc")}
    env = dict(ENV, MLFLOW_TRACKING_URI=stores["dvc"])
    released = subprocess.run([str(BIN / "python"), "-m", "flows.stages", "release"], cwd=root, env=env,
                              capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert released.returncode == 0, released.stderr[-3000:]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", stores["prefect"])
    flow = training_pipeline(params_path=str(root / "params.yaml"), force=True)

    versions = {}
    for driver, uri in stores.items():
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        registry.configure_tracking(root)
        (row,) = registry.list_versions("breast-cancer-classifier")
        versions[driver] = row
    prefect, dvc_ = versions["prefect"], versions["dvc"]
    assert set(prefect["tags"]) == set(dvc_["tags"])
    assert prefect["tags"]["driver"] == "prefect" and dvc_["tags"]["driver"] == "dvc"
    for key in (
        "decision",
        "gate.decision",
        "decision_reason",
        "candidate",
        "dataset_md5",
        "fingerprint",
        "params_hash",
    ):
        assert prefect["tags"][key] == dvc_["tags"][key], key
    assert "labels equal" in prefect["tags"]["infra_validation"] and "labels equal" in dvc_["tags"]["infra_validation"]
    test_metrics = {k: x for k, x in prefect["metrics"].items() if k.startswith("test_")}
    assert test_metrics and test_metrics == {k: x for k, x in dvc_["metrics"].items() if k.startswith("test_")}
    assert prefect["aliases"] == dvc_["aliases"] == ["champion"] and flow["aliases"] == ["champion"]


# --- dataset versions ----------------------------------------------------------------


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    """A repo with two committed dataset versions, both pushed to its local remote."""
    root = make_project(tmp_path_factory.mktemp("versions") / "repo", rows=200)
    shutil.copy(ROOT / ".gitignore", root / ".gitignore")
    init_repo(root)
    data = root / "data" / "dataset.parquet"
    commits, md5s = [], []
    for version in (1, 2):
        if version == 2:  # a new version: more rows, as a new `mlops ingest` or a hand edit would give
            write_parquet(read_source("sklearn:breast_cancer").sample(n=300, random_state=1).sort_index(), data)
        dvc(root, "add", "-q", "data")
        git(root, "add", "-A")
        git(root, "commit", "-qm", f"dataset v{version}")
        dvc(root, "push", "-q")
        commits.append(git(root, "rev-parse", "HEAD"))
        md5s.append(file_md5(data))
    assert md5s[0] != md5s[1]
    return root, git(root, "rev-parse", "--abbrev-ref", "HEAD"), commits, md5s


def test_each_version_comes_back_with_git_checkout_and_dvc_checkout(versions):
    root, branch, commits, md5s = versions
    data = root / "data" / "dataset.parquet"
    for ref, md5 in [(commits[0], md5s[0]), (branch, md5s[1])]:
        git(root, "checkout", "-q", ref)
        dvc(root, "checkout", "-q")
        assert file_md5(data) == md5


def test_a_fresh_clone_pulls_each_version_from_the_remote(versions, tmp_path):
    root, _, commits, md5s = versions
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(root), str(clone))
    # The remote's url is relative to the original repo; point the clone at the same folder.
    dvc(clone, "remote", "modify", "--local", "local", "url", str(root / ".dvc-remote"))
    for commit, md5 in reversed(list(zip(commits, md5s, strict=True))):
        git(clone, "checkout", "-q", commit)
        dvc(clone, "pull", "-q")
        assert file_md5(clone / "data" / "dataset.parquet") == md5
    assert len(pd.read_parquet(clone / "data" / "dataset.parquet")) == 200


def test_the_next_run_records_the_new_version_md5(versions):
    from flows import stages

    root, branch, _, md5s = versions
    git(root, "checkout", "-q", branch)
    dvc(root, "checkout", "-q")
    assert stages.main(["--params", str(root / "params.yaml"), "--out", str(root / "runs" / "dvc"), "ingest"]) == 0
    lineage = json.loads((root / "runs" / "dvc" / "ingest" / "dataset.json").read_text())
    assert lineage["md5"] == md5s[1] and lineage["rows"] == 300
