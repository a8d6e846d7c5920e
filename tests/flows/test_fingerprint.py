"""Content hashes: DVC parity for data, the one run fingerprint, location-independent code hashes."""

import hashlib
import importlib
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from components.fingerprint import (
    Inputs,
    code_fingerprint,
    dataset_fingerprint,
    decide,
    release_params,
    run_fingerprint,
    run_inputs,
)

PARAMS = {
    "data": {"seed": 1, "path": "a.parquet"},
    "train": {"lr": 0.1, "epochs": 3},
    "serve": {"port": 3000},
}


def _write_tree(root, files):
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def test_file_hash_is_its_md5(tmp_path):
    f = tmp_path / "x.csv"
    f.write_bytes(b"a,b\n1,2\n")
    assert dataset_fingerprint(f) == hashlib.md5(b"a,b\n1,2\n").hexdigest()


def test_directory_hash_depends_on_names_and_content_not_creation_order(tmp_path):
    _write_tree(tmp_path / "one", {"b.csv": b"2", "a/c.csv": b"3"})
    _write_tree(tmp_path / "two", {"a/c.csv": b"3", "b.csv": b"2"})
    assert dataset_fingerprint(tmp_path / "one") == dataset_fingerprint(tmp_path / "two")
    (tmp_path / "two" / "b.csv").write_bytes(b"22")
    assert dataset_fingerprint(tmp_path / "one") != dataset_fingerprint(tmp_path / "two")
    _write_tree(tmp_path / "three", {"b2.csv": b"2", "a/c.csv": b"3"})
    assert dataset_fingerprint(tmp_path / "one") != dataset_fingerprint(tmp_path / "three")
    with pytest.raises(FileNotFoundError):
        dataset_fingerprint(tmp_path / "missing")


def test_hashes_equal_what_dvc_records(tmp_path):
    """Parity: our md5 of a directory/file is the md5 `dvc add` writes into the .dvc file."""
    _write_tree(tmp_path, {"data/d.parquet": os.urandom(3000), "data/sub/e.csv": b"x\n1\n", "single.csv": b"y\n2\n"})
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    for args in (["init", "--no-scm", "-q"], ["add", "-q", "data", "single.csv"]):
        subprocess.run([sys.executable, "-m", "dvc", *args], cwd=tmp_path, env=env, check=True, timeout=300)
    recorded = {
        name: yaml.safe_load((tmp_path / f"{name}.dvc").read_text())["outs"][0]["md5"]
        for name in ("data", "single.csv")
    }
    assert recorded["data"] == dataset_fingerprint(tmp_path / "data") + ".dir"
    assert recorded["single.csv"] == dataset_fingerprint(tmp_path / "single.csv")


def test_the_params_hash_ignores_where_things_run_and_live_but_not_what_shapes_a_version():
    params = {"data": {"seed": 1, "path": "a.parquet"}, "validate": {"contract": "c.yaml"},
              "train": {"lr": 0.1, "parallel": {"engine": "local"}},
              "serve": {"host": "127.0.0.1", "port": 3000, "max_batch": 1000}}  # fmt: skip
    base = run_inputs("d", params, "contract-md5", "code").params_hash
    moved = {**params, "data": {"seed": 1, "path": "/elsewhere/a.parquet"}, "validate": {"contract": "/x/c.yaml"},
             "train": {"lr": 0.1, "parallel": {"engine": "dask"}},
             "serve": {"host": "0.0.0.0", "port": 4000, "max_batch": 1000}}  # fmt: skip
    assert run_inputs("d", moved, "contract-md5", "code").params_hash == base
    for changed in (
        {**params, "train": {"lr": 0.2, "parallel": {"engine": "local"}}},
        {**params, "serve": {**params["serve"], "max_batch": 10}},
    ):  # fmt: skip  (the bento changes)
        assert run_inputs("d", changed, "contract-md5", "code").params_hash != base
    assert run_inputs("d", params, "edited-contract", "code").params_hash != base  # a contract edit is an input
    assert params["train"]["parallel"] == {"engine": "local"} and "contract_md5" not in params["validate"]
    assert release_params(params, "m")["validate"] == {"contract_md5": "m"}


def test_code_hash_follows_source_bytes_not_location(tmp_path, monkeypatch):
    pkg = tmp_path / "a" / "fpkg_demo"
    _write_tree(pkg, {"__init__.py": b"", "step.py": b"X = 1\n", "sub/deep.py": b"Y = 2\n"})
    _write_tree(tmp_path / "a", {"fmod_demo.py": b"Z = 3\n"})
    monkeypatch.syspath_prepend(str(tmp_path / "a"))
    importlib.invalidate_caches()
    first = code_fingerprint(["fpkg_demo", "fmod_demo"])
    assert first == code_fingerprint(["fmod_demo", "fpkg_demo"])
    assert code_fingerprint(["fpkg_demo"]) != first
    assert "fpkg_demo" not in sys.modules  # hashed without importing

    shutil.copytree(tmp_path / "a", tmp_path / "b")
    monkeypatch.syspath_prepend(str(tmp_path / "b"))
    importlib.invalidate_caches()
    assert code_fingerprint(["fpkg_demo", "fmod_demo"]) == first  # same bytes elsewhere
    (tmp_path / "b" / "fpkg_demo" / "sub" / "deep.py").write_bytes(b"Y = 3\n")
    assert code_fingerprint(["fpkg_demo", "fmod_demo"]) != first
    with pytest.raises(ModuleNotFoundError):
        code_fingerprint(["no_such_module_here"])


def test_project_code_hash_covers_components_and_the_training_flow():
    from components.fingerprint import module_files

    files = module_files("components") | module_files("flows.training")
    assert "components/fingerprint.py" in files and "flows.training" in files
    assert len(code_fingerprint(["components", "flows.training"])) == 16


def test_run_fingerprint_changes_with_each_part():
    base = run_fingerprint("d", "p", "c")
    assert base == run_fingerprint("d", "p", "c")
    assert (
        len(
            {
                base,
                run_fingerprint("d2", "p", "c"),
                run_fingerprint("d", "p2", "c"),
                run_fingerprint("d", "p", "c2"),
            }
        )
        == 4
    )


INPUTS = Inputs(dataset_md5="d" * 32, params_hash="p" * 16, code_hash="c" * 16)
COMMIT = "abc123"


def _version(version, **tags):
    return {"version": version, "tags": tags}


def test_decide_trains_without_a_champion_and_skips_on_the_same_fingerprint():
    assert decide(INPUTS, None, [], COMMIT).retrain
    champion = _version("3", **INPUTS.tags())
    decision = decide(INPUTS, champion, [champion], COMMIT)
    assert not decision.retrain and "nothing changed: champion v3" in decision.reason and decision.adopt is None


def test_decide_names_what_changed():
    old = Inputs(dataset_md5="e" * 32, params_hash="p" * 16, code_hash="f" * 16)
    champion = _version("2", dataset_md5=old.dataset_md5, **old.tags())
    decision = decide(INPUTS, champion, [champion], COMMIT)
    assert decision.retrain
    assert "dataset md5 eeeeeeeeeeee -> dddddddddddd" in decision.reason and "code hash" in decision.reason
    assert "params hash" not in decision.reason


def test_decide_adopts_a_champion_without_a_fingerprint_only_when_lineage_proves_the_same_inputs():
    lineage_tags = {"dataset_md5": INPUTS.dataset_md5, "params_hash": INPUTS.params_hash, "git_commit": COMMIT}
    champion = _version("1", **lineage_tags)
    decision = decide(INPUTS, champion, [champion], COMMIT)
    assert not decision.retrain and decision.adopt == "1" and "per its lineage" in decision.reason
    for commit in ("abc123-dirty", "uncommitted"):
        dirty = _version("1", **{**lineage_tags, "git_commit": commit})
        assert decide(INPUTS, dirty, [dirty], commit).retrain
    other_params = _version("1", **{**lineage_tags, "params_hash": "other"})
    assert decide(INPUTS, other_params, [other_params], COMMIT).retrain
    fingerprinted = _version("1", **lineage_tags, fingerprint="another-run")  # its own fingerprint decides
    assert decide(INPUTS, fingerprinted, [fingerprinted], COMMIT).retrain


def test_decide_does_not_repeat_a_run_that_was_not_promoted():
    champion = _version("1", dataset_md5="old")
    tried = _version("2", **INPUTS.tags(), decision_reason="gate: f1 below threshold")
    decision = decide(INPUTS, champion, [tried, champion], COMMIT)
    assert not decision.retrain and "v2 was already trained" in decision.reason and "f1 below" in decision.reason


def test_both_flows_record_the_same_fingerprint_for_the_same_inputs(tmp_path):
    """The training flow's tags and the retraining flow's comparison come from one function."""
    from components.config import load_settings
    from components.dataset_settings import load_configured_contract, resolve
    from flows import retraining, steps
    from tests.conftest import make_project

    project = make_project(tmp_path / "p", rows=120)
    ctx = steps.fingerprinted(
        steps.resolve(project / "params.yaml"), dataset_fingerprint(project / "data" / "dataset.parquet")
    )
    settings = load_settings(project / "params.yaml")
    params = resolve(settings, load_configured_contract(settings, project)).as_params()
    inputs = retraining.current_inputs(params, project, project / "data" / "dataset.parquet")
    assert (ctx.phash, ctx.code_hash, ctx.fingerprint) == (inputs.params_hash, inputs.code_hash, inputs.fingerprint)
    contract = project / "contracts" / "breast_cancer.yaml"
    contract.write_text(contract.read_text().replace("roc_auc: 0.90", "roc_auc: 0.91"))
    assert (
        retraining.current_inputs(params, project, project / "data" / "dataset.parquet").fingerprint
        != inputs.fingerprint
    )
