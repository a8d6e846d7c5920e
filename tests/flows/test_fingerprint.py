"""Content hashes: DVC parity for data, key-scoped params hashes, location-independent code hashes."""

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
    params_fingerprint,
    run_fingerprint,
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


def test_params_hash_reads_only_the_named_keys():
    base = params_fingerprint(PARAMS, ["train", "data.seed"])
    assert base == params_fingerprint(PARAMS, ["data.seed", "train", "train"])  # order and repeats
    unrelated = {**PARAMS, "serve": {"port": 4000}, "data": {**PARAMS["data"], "path": "b.parquet"}}
    assert params_fingerprint(unrelated, ["train", "data.seed"]) == base
    changed = {**PARAMS, "train": {"lr": 0.2, "epochs": 3}}
    assert params_fingerprint(changed, ["train", "data.seed"]) != base
    assert params_fingerprint(PARAMS, ["train.lr"]) != params_fingerprint(PARAMS, ["train.epochs"])
    with pytest.raises(KeyError, match="train.momentum"):
        params_fingerprint(PARAMS, ["train.momentum"])


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
LINEAGE = {"params_hash": "full-hash", "git_commit": "abc123", "fingerprint": "training-fp"}


def _version(version, **tags):
    return {"version": version, "tags": tags}


def test_decide_trains_without_a_champion_and_skips_on_the_same_fingerprint():
    assert decide(INPUTS, None, [], LINEAGE).retrain
    champion = _version("3", **INPUTS.tags())
    decision = decide(INPUTS, champion, [champion], LINEAGE)
    assert not decision.retrain and "nothing changed: champion v3" in decision.reason and decision.adopt is None


def test_decide_names_what_changed():
    old = Inputs(dataset_md5="e" * 32, params_hash="p" * 16, code_hash="f" * 16)
    champion = _version("2", dataset_md5=old.dataset_md5, **old.tags())
    decision = decide(INPUTS, champion, [champion], LINEAGE)
    assert decision.retrain
    assert "dataset md5 eeeeeeeeeeee -> dddddddddddd" in decision.reason and "code hash" in decision.reason
    assert "params hash" not in decision.reason


def test_decide_adopts_a_champion_whose_training_record_matches():
    """Trained by the training flow directly: its own fingerprint (all params) is the proof."""
    recorded = {"dataset_md5": INPUTS.dataset_md5, "params_hash": "full-hash", "code_hash": "old-code"}
    same = _version("5", fingerprint="training-fp", **recorded)
    decision = decide(INPUTS, same, [same], LINEAGE)
    assert not decision.retrain and decision.adopt == "5" and "per its training record" in decision.reason
    other = _version("5", fingerprint="other-fp", **recorded)
    decision = decide(INPUTS, other, [other], LINEAGE)
    assert decision.retrain and decision.reason == "changed since champion v5: code hash old-code -> cccccccccccc"


def test_decide_adopts_an_older_champion_only_when_lineage_proves_the_same_inputs():
    lineage_tags = {"dataset_md5": INPUTS.dataset_md5, "params_hash": "full-hash", "git_commit": "abc123"}
    champion = _version("1", **lineage_tags)
    decision = decide(INPUTS, champion, [champion], LINEAGE)
    assert not decision.retrain and decision.adopt == "1"
    for commit in ("abc123-dirty", "uncommitted"):
        dirty = _version("1", **{**lineage_tags, "git_commit": commit})
        assert decide(INPUTS, dirty, [dirty], {**LINEAGE, "git_commit": commit}).retrain
    other_params = _version("1", **{**lineage_tags, "params_hash": "other"})
    assert decide(INPUTS, other_params, [other_params], LINEAGE).retrain


def test_decide_does_not_repeat_a_run_that_was_not_promoted():
    champion = _version("1", dataset_md5="old")
    tried = _version("2", **INPUTS.tags(), decision_reason="gate: f1 below threshold")
    decision = decide(INPUTS, champion, [tried, champion], LINEAGE)
    assert not decision.retrain and "v2 was already trained" in decision.reason and "f1 below" in decision.reason


def test_the_engine_is_not_an_input_but_everything_else_in_train_is():
    from components.fingerprint import without_engine

    base = {"data": {"seed": 1}, "train": {"seed": 42, "parallel": {"engine": "local"}, "search": {"n_trials": 0}}}
    on_dask = {**base, "train": {**base["train"], "parallel": {"engine": "dask", "address": None}}}
    assert (
        without_engine(base)
        == without_engine(on_dask)
        == {"data": {"seed": 1}, "train": {"seed": 42, "search": {"n_trials": 0}}}
    )
    more_trials = {**base, "train": {**base["train"], "search": {"n_trials": 16}}}
    assert without_engine(more_trials) != without_engine(base)
    assert base["train"]["parallel"] == {"engine": "local"}  # input not mutated
