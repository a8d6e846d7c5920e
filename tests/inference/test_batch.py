"""Batch scoring without Prefect: stable inference ids, chunked scoring equal to one-shot scoring for
every task, outputs that are never overwritten, and batches that are rejected scoring nothing."""

import dataclasses
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.data.contract_inference import infer_contract
from components.data.reading import read_with_contract
from components.inference.batch import claim_outputs, score_batch
from components.inference.scoring import inference_ids
from components.inference.validation import scoring_contract
from components.training.families import train_candidate
from components.validation.report import DataRejectedError
from tests.training.task_data import make_frame

FAMILIES = {
    "sklearn_logreg": {"C": 1.0, "max_iter": 300},
    "sklearn_ridge": {"alpha": 1.0},
    "sklearn_hgb": {"learning_rate": 0.2, "max_iter": 20, "max_leaf_nodes": 8},
}
CASES = [("binary", "sklearn_logreg"), ("binary", "sklearn_hgb"), ("multiclass", "sklearn_logreg"),
         ("multiclass", "sklearn_hgb"), ("regression", "sklearn_ridge"), ("regression", "sklearn_hgb")]  # fmt: skip


def contract_for(frame: pd.DataFrame, task: str, **changes):
    """A contract drafted from ``frame`` with loose bounds, so random batches of the same data pass."""
    drafted = infer_contract(frame, "target", name="toy", task=task)
    loose = tuple(dataclasses.replace(c, min=None, max=None, max_null_fraction=0.5 if c.nullable else None)
                  for c in drafted.columns)  # fmt: skip
    return dataclasses.replace(drafted, columns=loose, **changes)


@pytest.fixture(scope="module")
def trained():
    """(contract, model, training frame) per (task, family), trained once."""
    out = {}
    for task, family in CASES:
        train = make_frame(task, 300, 0)
        model = train_candidate("c", family, FAMILIES[family], train.drop(columns="target"), train["target"], seed=0,
                                task=task)  # fmt: skip
        out[task, family] = (contract_for(train, task), model, train)
    return out


def write_batch(tmp_path, frame: pd.DataFrame, name: str = "batch.parquet"):
    path = tmp_path / name
    frame.to_parquet(path) if name.endswith(".parquet") else frame.to_csv(path, index=False)
    return path


def score(path, contract, model, out, **kwargs):
    info = {"name": "toy", "version": "3", "uri": "models:/toy/3", "task": model.task, "classes": model.classes}
    return score_batch(path, contract=contract, predict=model.predict_frame, model=info, out_dir=out, **kwargs)


def test_inference_ids_are_stable_and_differ_between_batches():
    rows = pd.DataFrame({"x": range(50)})
    a, again, other = (inference_ids(rows, [], md5) for md5 in ("a" * 32, "a" * 32, "b" * 32))
    assert list(a) == list(again) and len(set(a)) == 50
    assert not set(a) & set(other)
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in a)
    # an id depends on the row's position in the batch, not on the chunk it was read in
    assert list(inference_ids(rows.iloc[20:], [], "a" * 32)) == list(a[20:])


def test_inference_ids_come_from_the_key_columns_when_the_contract_has_them():
    rows = pd.DataFrame({"customer": [17, 4, 99], "region": ["n", "s", "n"]})
    assert list(inference_ids(rows, ["customer"], "a" * 32)) == ["17", "4", "99"]
    assert list(inference_ids(rows, ["customer", "region"], "a" * 32)) == ["17|n", "4|s", "99|n"]
    with pytest.raises(KeyError, match="account"):
        inference_ids(rows, ["account"], "a" * 32)


@pytest.mark.parametrize("task,family", CASES)
def test_chunked_scoring_equals_one_shot_scoring(tmp_path, trained, task, family):
    contract, model, _ = trained[task, family]
    path = write_batch(tmp_path, make_frame(task, 203, 1).drop(columns="target"))
    meta = score(path, contract, model, tmp_path / "out", chunk_rows=50)  # 5 chunks, the last of 3 rows
    chunked = pd.read_parquet(meta["predictions"])
    whole = model.predict_frame(read_with_contract(path, scoring_contract(contract)))
    assert meta["rows"] == {"read": 203, "scored": 203, "quarantined": 0}
    assert list(chunked.columns) == ["inference_id", "batch_row", "model_version", "model_uri", *whole.columns]
    assert (chunked["model_version"] == "3").all() and (chunked["model_uri"] == "models:/toy/3").all()
    pd.testing.assert_frame_equal(chunked[list(whole.columns)], whole.reset_index(drop=True), check_exact=True)


def test_ids_and_answers_do_not_depend_on_the_chunk_size_or_the_file_format(tmp_path, trained):
    contract, model, _ = trained["multiclass", "sklearn_hgb"]
    batch = make_frame("multiclass", 120, 2).drop(columns="target")
    parquet, csv = write_batch(tmp_path, batch), write_batch(tmp_path, batch, "batch.csv")
    small = pd.read_parquet(score(parquet, contract, model, tmp_path / "a", chunk_rows=33)["predictions"])
    large = pd.read_parquet(score(parquet, contract, model, tmp_path / "b", chunk_rows=1000)["predictions"])
    pd.testing.assert_frame_equal(small, large)
    from_csv = pd.read_parquet(score(csv, contract, model, tmp_path / "c", chunk_rows=50)["predictions"])
    pd.testing.assert_frame_equal(from_csv.drop(columns="inference_id"), small.drop(columns="inference_id"))
    assert not set(from_csv["inference_id"]) & set(small["inference_id"])  # another file, another md5


def test_predictions_and_metadata_are_written_and_never_overwritten(tmp_path, trained):
    contract, model, train = trained["binary", "sklearn_logreg"]
    path = write_batch(tmp_path, make_frame("binary", 60, 3).drop(columns="target"))
    first = score(path, contract, model, tmp_path / "out", reference=train, reference_note="v3's data")
    second = score(path, contract, model, tmp_path / "out")  # the same batch again, within the same second
    assert first["predictions"] != second["predictions"] and first["metadata_path"] != second["metadata_path"]
    metadata = [p for p in (tmp_path / "out").glob("*.json") if not p.name.endswith(".drift.json")]
    assert len(list((tmp_path / "out").glob("*.parquet"))) == len(metadata) == 2
    assert len(list((tmp_path / "out").glob("*.drift.json"))) == 1  # the second scoring had no reference
    with open(first["metadata_path"]) as handle:
        saved = json.load(handle)
    assert saved["status"] == "scored" and saved["batch"]["md5"][:12] in first["predictions"]
    assert saved["model"]["version"] == "3" and saved["rows"]["scored"] == 60
    assert saved["drift"]["reference"] == "v3's data" and "verdict" in saved["drift"]
    assert saved["drift"]["report"]["json"] == first["metadata_path"].replace(".json", ".drift.json")
    assert {"read", "validate", "score", "write"} <= set(saved["timings"])
    assert second["drift"]["verdict"].startswith("skipped") and second["drift_report"] is None
    # a claimed name is never handed out again, even with the same batch, md5 and time
    now = datetime(2026, 12, 1, tzinfo=UTC)
    bases = [claim_outputs(tmp_path / "claims", path, "f" * 32, now) for _ in range(3)]
    assert [b.name[-2:] for b in bases] == ["0Z", "-1", "-2"]


def test_a_blocking_failure_scores_nothing_and_says_why(tmp_path, trained):
    contract, model, _ = trained["regression", "sklearn_ridge"]
    batch = make_frame("regression", 80, 4).drop(columns="target")
    path = write_batch(tmp_path, batch.assign(x2=batch["x2"].astype(str).where(batch.index != 5, "oops")))
    with pytest.raises(DataRejectedError, match="x2"):
        score(path, contract, model, tmp_path / "out", chunk_rows=30)
    out = tmp_path / "out"
    assert not list(out.glob("*.parquet*"))
    (meta_path,) = out.glob("*.json")
    meta = json.loads(meta_path.read_text())
    assert meta["status"] == "rejected" and meta["predictions"] is None and meta["rows"]["scored"] == 0
    assert any("x2" in f for f in meta["validation"]["failures"])
    assert meta["rows"]["read"] == 30  # the first chunk failed: nothing further was read


def test_quarantine_works_as_in_training(tmp_path, trained):
    base, model, _ = trained["binary", "sklearn_hgb"]
    x1 = dataclasses.replace(base.column("x1"), min=-3.0, severity={"range": "quarantine"})
    contract = dataclasses.replace(base, columns=tuple(x1 if c.name == "x1" else c for c in base.columns),
                                   max_quarantine_fraction=0.05)  # fmt: skip
    batch = make_frame("binary", 100, 5).drop(columns="target")
    batch.loc[[3, 77], "x1"] = -10.0
    meta = score(write_batch(tmp_path, batch), contract, model, tmp_path / "out", chunk_rows=40)
    assert meta["rows"] == {"read": 100, "scored": 98, "quarantined": 2}
    scored = pd.read_parquet(meta["predictions"])
    assert not {3, 77} & set(scored["batch_row"])
    quarantined = pd.read_csv(meta["validation"]["quarantine"])
    assert list(quarantined["_quarantine_rule"]) == ["range:x1", "range:x1"] and "target" not in quarantined
    # over the contract's share, the whole batch is rejected, even though each chunk alone was under it
    batch.loc[[10, 50, 90, 91], "x1"] = -10.0  # 6 of 100 rows, over 5%
    with pytest.raises(DataRejectedError, match="quarantine_share"):
        score(write_batch(tmp_path, batch, "worse.parquet"), contract, model, tmp_path / "out2", chunk_rows=40)
    assert not list((tmp_path / "out2").glob("*.parquet*"))


def test_the_target_is_not_required_and_ignored_when_present(tmp_path, trained):
    contract, model, _ = trained["multiclass", "sklearn_logreg"]
    batch = make_frame("multiclass", 50, 6)
    with_target = score(write_batch(tmp_path, batch), contract, model, tmp_path / "a")
    without = score(write_batch(tmp_path, batch.drop(columns="target"), "b.parquet"), contract, model, tmp_path / "b")
    a, b = (pd.read_parquet(m["predictions"]).drop(columns="inference_id") for m in (with_target, without))
    pd.testing.assert_frame_equal(a, b)


def test_keys_must_be_unique_across_chunks(tmp_path, trained):
    _, model, _ = trained["binary", "sklearn_logreg"]
    batch = make_frame("binary", 60, 7).drop(columns="target").assign(id=np.arange(60))
    drafted = contract_for(batch.assign(target=["a", "b"] * 30), "binary")
    columns = tuple(dataclasses.replace(c, feature=c.name != "id") for c in drafted.columns)
    contract = dataclasses.replace(drafted, columns=columns, keys=["id"])
    meta = score(write_batch(tmp_path, batch), contract, model, tmp_path / "a", chunk_rows=25)
    assert list(pd.read_parquet(meta["predictions"])["inference_id"][:3]) == ["0", "1", "2"]
    batch.loc[55, "id"] = 3  # a duplicate in another chunk: no chunk alone sees it
    with pytest.raises(DataRejectedError, match="unique_keys"):
        score(write_batch(tmp_path, batch, "dup.parquet"), contract, model, tmp_path / "b", chunk_rows=25)


def test_drift_is_measured_against_the_reference(tmp_path, trained):
    contract, model, train = trained["regression", "sklearn_ridge"]
    batch = make_frame("regression", 400, 8).drop(columns="target")
    meta = score(write_batch(tmp_path, batch.assign(x1=batch["x1"] + 3)), contract, model, tmp_path / "out",
                 reference=train, reference_note="v3's training data", chunk_rows=90)  # fmt: skip
    assert meta["drift"]["drifted"] == ["x1"] and meta["drift"]["verdict"].startswith("no dataset drift: 1 of 3")
    assert meta["drift"]["share_drifted"] == round(1 / 3, 6) and meta["drift"]["dataset_drift"] is False
    assert meta["drift"]["prediction_drift"] is True  # a ridge on x1 answers higher when x1 is higher
    (x1,) = (c for c in meta["drift_report"]["columns"] if c["column"] == "x1")
    assert x1["statistic"] == "ks_p_value" and x1["drifted"]  # 300 reference rows: a test, not a distance
    # the contract's own drift rule (PSI) still runs in the validation report
    assert any("drift" in w and "x1" in w for w in meta["validation"]["warnings"])


def test_the_champion_resolves_to_its_version_contract_training_data_and_scorer(tmp_path, monkeypatch, trained):
    """A real SQLite store: @champion -> exact version, the contract its run names (a stored copy wins),
    its training data by md5, and an unwrapped scorer answering as the registered pyfunc does."""
    import mlflow

    from components import vocabulary as v
    from components.config import load_settings
    from components.data.contract_yaml import save_contract
    from components.data.dataset import file_md5
    from components.inference import champion as ch
    from components.model.trained import pyfunc_input
    from components.release import registry
    from tests.conftest import ROOT

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    registry.configure_tracking(tmp_path, experiment="tests")
    settings = load_settings(ROOT / "params.yaml")
    contract, model, train = trained["binary", "sklearn_logreg"]
    (tmp_path / "contracts").mkdir()
    save_contract(contract, tmp_path / "contracts" / "toy.yaml")
    train.to_parquet(tmp_path / "train.parquet")
    with pytest.raises(ch.NoChampionError, match="toy"):
        ch.resolve_champion("toy")
    with mlflow.start_run() as parent:
        mlflow.log_dict({"validate": {"contract": "contracts/toy.yaml"}}, "params.json")
        with mlflow.start_run(nested=True):
            uri = registry.log_model(model, train.drop(columns="target"))
    tags = {v.TAG_PIPELINE_RUN: parent.info.run_id, v.TAG_DATASET_MD5: file_md5(tmp_path / "train.parquet"),
            v.TAG_DATASET_PATH: "train.parquet", v.TAG_TASK: "binary"}  # fmt: skip
    registry.set_alias("toy", "champion", registry.register(uri, "toy", parent.info.run_id, tags).version)

    found = ch.resolve_champion("toy")
    assert (found.version, found.uri, found.run_id) == ("1", "models:/toy/1", parent.info.run_id)
    loaded, source = ch.version_contract(found, tmp_path, settings)
    assert loaded.name == "toy" and "read from the project" in source and "params.json" in source
    reference, note = ch.training_reference(found, tmp_path, settings, loaded)
    assert len(reference) == len(train) and tags[v.TAG_DATASET_MD5] in note
    predict, info = ch.load_scorer(found)
    assert info["scorer"].startswith("TrainedModel") and info["classes"] == model.classes
    batch = read_with_contract(write_batch(tmp_path, make_frame("binary", 40, 9)), scoring_contract(contract))
    pyfunc = mlflow.pyfunc.load_model(found.uri)
    pd.testing.assert_frame_equal(predict(batch), pyfunc.predict(pyfunc_input(pyfunc, batch)).set_axis(batch.index))

    mlflow.log_artifact(str(tmp_path / "contracts" / "toy.yaml"), "contract", run_id=parent.info.run_id)
    _, source = ch.version_contract(found, tmp_path, settings)
    assert source == f"runs:/{parent.info.run_id}/contract/toy.yaml (stored with the run)"
    (tmp_path / "train.parquet").write_bytes(b"changed since")
    assert ch.training_reference(found, tmp_path, settings, loaded)[0] is None  # md5 no longer matches: skip


def test_a_file_that_cannot_be_read_is_a_read_error_leaving_nothing_behind(tmp_path, trained):
    from components.data.contract import DataReadError

    contract, model, _ = trained["binary", "sklearn_logreg"]
    header_only, not_parquet = tmp_path / "empty.csv", tmp_path / "text.parquet"
    header_only.write_text("x1,x2,colour\n")
    not_parquet.write_text("x1,x2\n1,2\n")
    with pytest.raises(DataReadError, match="header only"):
        score(header_only, contract, model, tmp_path / "out")
    with pytest.raises(DataReadError, match="not a readable Parquet file"):
        score(not_parquet, contract, model, tmp_path / "out")
    assert not list((tmp_path / "out").iterdir())


def _without_run_details(report: dict) -> dict:
    """A drift report minus what differs between two scorings of one batch (time, file names)."""
    return report | {"context": {k: v for k, v in report["context"].items() if k != "created"}}


def test_chunked_scoring_gives_the_same_drift_report_as_one_chunk(tmp_path, trained):
    """The sample is keyed by row position: the same rows, so the same report, whatever the chunk size."""
    contract, model, train = trained["multiclass", "sklearn_hgb"]
    batch = make_frame("multiclass", 400, 10).drop(columns="target")
    path = write_batch(tmp_path, batch.assign(x2=batch["x2"] * 2, colour=batch["colour"].where(batch.index % 3 > 0)))
    reports = [score(path, contract, model, tmp_path / "out", reference=train, reference_note="v3's data",
                     chunk_rows=rows, drift_rows=150)["drift_report"] for rows in (37, 1000)]  # fmt: skip
    assert _without_run_details(reports[0]) == _without_run_details(reports[1])
    report = reports[0]
    assert report["sample"]["current_compared"] == 150 and "150 of the 400 scored rows" in report["context"]["sampling"]
    assert report["drifted"] == ["x2", "colour"] and report["dataset_drift"] is True  # 2 of 3 > 0.5
    assert report["prediction"]["statistic"] == "chi2_p_value"  # 300 reference rows, three labels
    for suffix in (".drift.html", ".drift.json"):
        assert len(list((tmp_path / "out").glob(f"*{suffix}"))) == 2  # one per scoring, never overwritten


def test_a_rejected_batch_reports_the_drift_of_what_was_scored_or_says_it_skipped(tmp_path, trained):
    base, model, train = trained["binary", "sklearn_hgb"]
    x1 = dataclasses.replace(base.column("x1"), min=-3.0, severity={"range": "quarantine"})
    contract = dataclasses.replace(base, columns=tuple(x1 if c.name == "x1" else c for c in base.columns),
                                   max_quarantine_fraction=0.05)  # fmt: skip
    batch = make_frame("binary", 100, 11).drop(columns="target")
    batch.loc[[3, 10, 50, 77, 90, 91], "x1"] = -10.0  # 6% quarantined: the batch as a whole is rejected at the end
    with pytest.raises(DataRejectedError, match="quarantine_share"):
        score(write_batch(tmp_path, batch), contract, model, tmp_path / "a", reference=train, reference_note="v3",
              chunk_rows=40)  # fmt: skip
    (meta_path,) = (p for p in (tmp_path / "a").glob("*.json") if not p.name.endswith(".drift.json"))
    drift = json.loads(meta_path.read_text())["drift"]
    saved = json.loads(Path(drift["report"]["json"]).read_text())
    assert saved["context"]["status"].startswith("rejected: quarantine_share")
    assert saved["sample"]["current_rows"] == 94 and "no predictions were published" in saved["context"]["note"]
    # rejected in the first chunk: nothing was scored, so nothing to compare, and the metadata says so
    broken = batch.assign(x2=batch["x2"].astype(str).where(batch.index != 5, "oops"))
    with pytest.raises(DataRejectedError, match="x2"):
        score(write_batch(tmp_path, broken, "broken.parquet"), contract, model, tmp_path / "b", reference=train,
              reference_note="v3", chunk_rows=40)  # fmt: skip
    (meta_path,) = (tmp_path / "b").glob("*.json")
    drift = json.loads(meta_path.read_text())["drift"]
    assert drift["verdict"].startswith("skipped: batch rejected") and drift["report"] is None
    assert not list((tmp_path / "b").glob("*.drift.*"))


def _register(tmp_path, monkeypatch, model, train) -> dict:
    """``model`` registered in a real SQLite store under ``tmp_path``: what score_batch records of it."""
    import mlflow

    from components.release import registry

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    registry.configure_tracking(tmp_path, experiment="tests")
    with mlflow.start_run() as run:
        uri = registry.log_model(model, train.drop(columns="target"))
    version = registry.register(uri, "toy", run.info.run_id, {}).version
    return {"name": "toy", "version": version, "uri": f"models:/toy/{version}", "task": model.task,
            "classes": model.classes, "model_run_id": run.info.run_id}  # fmt: skip


@pytest.mark.slow
def test_scoring_on_dask_gives_the_local_predictions_and_drift_report(tmp_path, monkeypatch, trained):
    """batch.parallel dask: a real LocalCluster of 2 workers, each loading the version by its URI. Quarantined
    rows in several chunks, so each chunk's answers must come back beside its own rows."""
    from components.config import ParallelSettings

    base, model, train = trained["multiclass", "sklearn_hgb"]
    x1 = dataclasses.replace(base.column("x1"), min=-3.0, severity={"range": "quarantine"})
    contract = dataclasses.replace(base, columns=tuple(x1 if c.name == "x1" else c for c in base.columns),
                                   max_quarantine_fraction=0.05)  # fmt: skip
    info = _register(tmp_path, monkeypatch, model, train)
    batch = make_frame("multiclass", 400, 12).drop(columns="target")
    batch.loc[[5, 130, 131, 390], "x1"] = -10.0
    path = write_batch(tmp_path, batch.assign(x2=batch["x2"] * 1.5))

    def on(engine: str) -> dict:
        return score_batch(path, contract=contract, predict=model.predict_frame, model=info, out_dir=tmp_path / engine,
                           reference=train, reference_note="v1's data", chunk_rows=90, drift_rows=150,
                           parallel=ParallelSettings(engine=engine, n_workers=2))  # fmt: skip

    runs = {engine: on(engine) for engine in ("local", "dask")}
    local, dask = (pd.read_parquet(runs[e]["predictions"]) for e in ("local", "dask"))
    pd.testing.assert_frame_equal(dask, local)
    assert len(local) == 396 and not {5, 130, 131, 390} & set(local["batch_row"])
    assert _without_run_details(runs["dask"]["drift_report"]) == _without_run_details(runs["local"]["drift_report"])
    assert runs["dask"]["drift"]["drifted"] == ["x2"]
    saved = json.loads(Path(runs["dask"]["metadata_path"]).read_text())
    assert saved["batch"]["parallel"] == {"engine": "dask", "n_workers": 2}
    assert runs["local"]["batch"]["parallel"] == {"engine": "local"}
    assert saved["rows"] == runs["local"]["rows"] == {"read": 400, "scored": 396, "quarantined": 4}
    assert {"read", "validate", "score", "write", "drift"} <= set(saved["timings"])


def test_reference_predictions_are_computed_once_per_version_and_reference(tmp_path, monkeypatch, trained):
    """The model's answers on its reference sample are cached under <out>/.cache: the second batch of a version
    skips them; another version or other reference data is scored afresh. The report is the same either way."""
    from components.release import registry

    contract, model, train = trained["binary", "sklearn_hgb"]
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    registry.configure_tracking(tmp_path)  # an empty store: these run ids have nothing stored with them
    info = {"name": "toy", "version": "3", "uri": "models:/toy/3", "task": model.task, "classes": model.classes,
            "model_run_id": "a" * 32}  # fmt: skip
    calls: list[int] = []

    def predict(rows: pd.DataFrame) -> pd.DataFrame:
        calls.append(len(rows))
        return model.predict_frame(rows)

    path = write_batch(tmp_path, make_frame("binary", 120, 13).drop(columns="target"))

    def run(reference=train, **changes):
        calls.clear()
        meta = score_batch(path, contract=contract, predict=predict, model=info | changes, out_dir=tmp_path / "out",
                           reference=reference, reference_note="v3's data", chunk_rows=50)  # fmt: skip
        return meta["drift_report"], [n for n in calls if n == len(reference)]  # the reference sample's scorings

    first, scored = run()
    assert scored == [300] and len(list((tmp_path / "out" / ".cache").glob("reference-predictions-*.parquet"))) == 1
    second, scored = run()
    assert scored == [] and _without_run_details(second) == _without_run_details(first)
    assert run(model_run_id="b" * 32)[1] == [300]  # another version: its own answers
    assert run(reference=train.iloc[:-1])[1] == [299]  # other reference data
    edited = train.assign(x1=train["x1"].where(train.index != 7, 0.0))
    assert run(reference=edited)[1] == [300]  # same size, one value changed
    assert len(list((tmp_path / "out" / ".cache").glob("*.parquet"))) == 4
    assert run()[1] == []  # the first key still hits
    without_version = score_batch(path, contract=contract, predict=predict, model=info | {"model_run_id": None},
                                  out_dir=tmp_path / "other", reference=train, reference_note="v3's data")  # fmt: skip
    assert not (tmp_path / "other" / ".cache").exists() and without_version["drift_report"] is not None


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_reference_predictions_stored_at_registration_spare_the_first_batch(tmp_path, monkeypatch, trained, task):
    """A version registered with its predictions on the reference sample (as the release does) scores no
    reference at its first batch, and the report is the one it would have computed itself. Predictions
    stored for another sample (here: other reference data) are not trusted: that sample is scored."""
    from components.monitoring.reference_scores import ARTIFACT, store_reference_scores

    family = "sklearn_hgb" if task == "multiclass" else "sklearn_ridge"
    contract, model, train = trained[task, family]
    info = _register(tmp_path, monkeypatch, model, train)
    note = store_reference_scores(train, model.predict_frame, "target", model.task, info["model_run_id"])
    assert note == f"300 rows of the training data scored and stored as {ARTIFACT}"
    calls: list[int] = []

    def predict(rows: pd.DataFrame) -> pd.DataFrame:
        calls.append(len(rows))
        return model.predict_frame(rows)

    path = write_batch(tmp_path, make_frame(task, 120, 13).drop(columns="target"))

    def run(out: str, reference=train, **changes):
        calls.clear()
        meta = score_batch(path, contract=contract, predict=predict, model=info | changes, out_dir=tmp_path / out,
                           reference=reference, reference_note="v1's data", chunk_rows=50)  # fmt: skip
        return meta["drift_report"], [n for n in calls if n == len(reference)]

    stored, scored = run("first")
    assert scored == [] and not (tmp_path / "first" / ".cache").exists()
    computed, scored = run("unregistered", model_run_id=None)
    assert scored == [300] and _without_run_details(stored) == _without_run_details(computed)
    assert run("edited", reference=train.iloc[:-1])[1] == [299]
