"""A customer export that looks like users' data, end to end with no --set: `mlops contract infer`, then
`mlops run`, through the gate, registration, a real bento, infra validation, promotion and serving.

The export is generated here (tests/messy.py): categorical columns with a rare level, an id column,
blanks in numeric columns (one nullable integer), a boolean column and Yes/No labels.
"""

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest

from components.release import registry
from tests.conftest import FAST, make_project
from tests.messy import messy_frame, write_messy_export

pytestmark = pytest.mark.slow
MODEL = "churn"  # named after the contract, which `contract infer` names after its file


def _cli(*argv: str) -> int:
    from flows.cli.main import main

    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("messy"))
    write_messy_export(root / "exports" / "churn.csv")
    return root


@pytest.fixture(scope="module")
def churn_run(project, prefect_harness):
    params = project / "params.yaml"
    data, contract = project / "exports" / "churn.csv", project / "contracts" / "churn.yaml"
    assert _cli("--params", params, "contract", "infer", "--data", data, "--target", "Churn", "--out", contract) == 0
    assert _cli("--params", params, "run", "--data", data, "--contract", contract) == 0  # no --set
    registry.configure_tracking(project)
    version = registry.alias_version(MODEL, "champion")
    return {"version": version, "tags": registry.client().get_model_version(MODEL, version).tags}


def test_draft_contract_sees_categories_ids_blanks_and_slices(project, churn_run):
    from components.data.contract import load_contract

    contract = load_contract(project / "contracts" / "churn.yaml")
    kinds = {c.name: c.dtype for c in contract.columns}
    assert kinds["Contract"] == kinds["PaymentMethod"] == kinds["gender"] == "category"
    assert kinds["PaperlessBilling"] == "bool"
    assert "customerID" not in contract.feature_columns() and contract.keys == ["customerID"]
    assert contract.column("TotalCharges").nullable and contract.column("SupportTickets").nullable
    assert contract.evaluation["thresholds"] == {}  # no known bar: the baseline gate decides
    assert set(contract.evaluation["slices"]["columns"]) <= {"gender", "Contract", "PaymentMethod"}


def test_run_with_no_overrides_promotes_a_model_that_beats_the_prior(churn_run):
    tags = churn_run["tags"]
    assert churn_run["version"] is not None
    assert tags["decision"] == "promote" and tags["gate.decision"] == "promote"
    assert tags["gate.baseline"].startswith("pass roc_auc")
    assert "class-prior baseline" in tags["decision_reason"]
    assert tags["bento_tag"].startswith(f"{MODEL}:")
    assert "labels equal" in tags["infra_validation"]


def test_in_process_pyfunc_and_http_predictions_are_identical(project, churn_run):
    """Raw rows, blanks and the rare level included, give the same answer whichever way they go in."""
    from components.data.contract import load_contract
    from components.data.reading import read_with_contract
    from components.model.trained import pyfunc_input
    from components.release.bento_server import serve_bento
    from components.release.infra_validation import frame_to_records

    contract = load_contract(project / "contracts" / "churn.yaml")
    raw = read_with_contract(project / "exports" / "churn.csv", contract)
    rows = pd.concat(
        [
            raw[raw["PaymentMethod"] == "Mailed check (paper)"].head(5),
            raw[raw["TotalCharges"].isna()].head(5),
            raw[raw["SupportTickets"].isna()].head(5),
            raw.head(25),
        ]
    )[contract.feature_columns()]
    assert rows["PaymentMethod"].dtype == "category" or rows["PaymentMethod"].map(type).eq(str).all()

    uri = f"models:/{MODEL}/{churn_run['version']}"
    pyfunc = mlflow.pyfunc.load_model(uri)
    through_pyfunc = pyfunc.predict(pyfunc_input(pyfunc, rows))
    trained = pyfunc.unwrap_python_model()._model  # the TrainedModel itself, fed the raw typed frame
    in_process = trained.predict_frame(rows)

    records = frame_to_records(rows)
    assert isinstance(records[0]["Contract"], str) and isinstance(records[0]["PaperlessBilling"], bool)
    assert any(r["TotalCharges"] is None for r in records)
    with serve_bento(churn_run["tags"]["bento_tag"]) as served:
        answer = httpx.post(f"{served.url}/predict", json={"records": records}, timeout=30).json()
    over_http = pd.DataFrame(answer["predictions"])

    assert list(in_process["label"]) == list(through_pyfunc["label"]) == list(over_http["label"])
    assert set(in_process["label"]) <= {"Yes", "No"}
    np.testing.assert_allclose(in_process["probability"], through_pyfunc["probability"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(in_process["probability"], over_http["probability"], rtol=0, atol=1e-9)


def test_status_lists_the_dataset_model_by_its_contract_name(project, churn_run, capsys):
    assert _cli("--params", project / "params.yaml", "status", "--model", MODEL) == 0
    out = capsys.readouterr().out
    assert MODEL in out and "champion" in out


def test_a_model_no_better_than_the_prior_is_not_promoted(project, churn_run, tmp_path):
    """Labels unrelated to the features (a seed messy_frame does not use): kept, with the baseline as the reason."""
    from components.data.contract_inference import infer_contract
    from components.data.contract_yaml import save_contract

    frame = messy_frame(rows=2000, seed=7)
    frame["Churn"] = np.random.default_rng(1007).choice(["Yes", "No"], size=len(frame), p=[0.3, 0.7])
    frame.to_csv(tmp_path / "noise.csv", index=False)
    save_contract(infer_contract(frame, "Churn", name="noise"), tmp_path / "noise.yaml")
    fast = sum((["--set", o] for o in FAST), [])
    assert _cli("--params", project / "params.yaml", "run", "--data", tmp_path / "noise.csv",
                "--contract", tmp_path / "noise.yaml", *fast) == 0  # fmt: skip
    registry.configure_tracking(project)
    (version,) = registry.list_versions("noise")
    assert version["aliases"] == [] and registry.alias_version("noise", "champion") is None
    assert version["tags"]["decision"] == "keep"
    assert version["tags"]["decision_reason"].startswith("kept: no better than the baseline")
    assert version["tags"]["gate.baseline"].startswith("fail")


def test_three_labels_are_drafted_as_multiclass(project, churn_run, tmp_path):
    """Tiers instead of Yes/No: the draft contract says multiclass (tests/e2e/test_tasks.py trains one)."""
    import yaml

    frame = messy_frame(rows=600, seed=3)
    frame["Churn"] = np.random.default_rng(1003).choice(["low", "mid", "high"], size=len(frame))
    frame.to_csv(tmp_path / "tiers.csv", index=False)
    assert _cli("--params", project / "params.yaml", "contract", "infer", "--data", tmp_path / "tiers.csv",
                "--target", "Churn", "--out", tmp_path / "tiers.yaml") == 0  # fmt: skip
    draft = yaml.safe_load((tmp_path / "tiers.yaml").read_text())
    assert draft["task"] == "multiclass" and draft["labels"] == ["high", "low", "mid"]


def test_a_failure_after_registration_is_recorded_on_the_version_and_the_run(project, churn_run, monkeypatch):
    """Infra validation blows up (not a failed check: an exception): the version says failed and why,
    the MLflow run is FAILED with an error tag, and the champion does not move."""
    from flows.training import training_pipeline

    def boom(*args, **kwargs):
        raise RuntimeError("injected failure while serving the bento")

    monkeypatch.setattr("components.release.infra_validation.validate_bento", boom)
    registry.configure_tracking(project)
    before = registry.alias_version(MODEL, "champion")
    with pytest.raises(RuntimeError, match="injected failure"):
        training_pipeline(
            params_path=str(project / "params.yaml"),
            data_path=str(project / "exports" / "churn.csv"),
            contract=str(project / "contracts" / "churn.yaml"),
            overrides=["promote.margin=0.5"],  # non-inferior by a wide margin: the gate passes
            force=True,
        )
    registry.configure_tracking(project)
    newest = registry.list_versions(MODEL)[0]
    assert newest["tags"]["decision"] == "failed" and "injected failure" in newest["tags"]["decision_reason"]
    assert newest["aliases"] == [] and registry.alias_version(MODEL, "champion") == before
    run = registry.client().get_run(newest["tags"]["pipeline_run_id"])
    assert run.info.status == "FAILED" and "injected failure" in run.data.tags["error"]


def test_only_the_champion_says_promote(project, churn_run):
    registry.configure_tracking(project)
    for name in (MODEL, "noise"):
        promoted = [r["version"] for r in registry.list_versions(name) if r["tags"].get("decision") == "promote"]
        champion = registry.alias_version(name, "champion")
        assert promoted == ([champion] if champion else [])


def test_bentos_built_one_after_another_in_one_process_each_carry_their_own_service(project, churn_run):
    """BentoML imports the service module to build; a cached import must not give a second bento the first's
    service (its name would not match what `bentoml serve` loads: StopIteration at start-up)."""
    import bentoml

    from components.release.package import build_bento

    schema = {"features": []}
    for service_name in ("churn-copy-a", "churn-copy-b"):
        version = churn_run["version"]
        tag = build_bento(registered_model=MODEL, version=version, service_name=service_name,
                          metadata={"model_version": version}, schema=schema, constraints=None)  # fmt: skip
        assert [s.name for s in bentoml.bentos.get(tag).info.services] == [service_name]


def test_a_european_export_with_unlabelled_rows_trains_on_its_labelled_rows(project, churn_run, tmp_path):
    """The same kind of export written ';'-separated with decimal commas, some outcomes not known yet:
    drafted with no options, trained on the labelled rows (the others quarantined and logged), its drift
    reference scored from the file read as training read it, and a batch in the same format scored."""
    from components import vocabulary as v
    from components.monitoring.reference_scores import ARTIFACT

    frame = messy_frame(rows=900, seed=11)
    frame.loc[frame.index[::30], "Churn"] = None  # 30 rows without an outcome yet
    data, contract = tmp_path / "churn_eu.csv", tmp_path / "churn_eu.yaml"
    frame.to_csv(data, index=False, sep=";", decimal=",")
    params = project / "params.yaml"
    fast = sum((["--set", o] for o in FAST), [])
    assert _cli("--params", params, "contract", "infer", "--data", data, "--target", "Churn", "--out", contract) == 0
    assert _cli("--params", params, "run", "--data", data, "--contract", contract, *fast) == 0

    registry.configure_tracking(project)
    (version,) = registry.list_versions("churn_eu")
    assert version["aliases"] == ["champion"]
    client = registry.client()
    pipeline_run = version["tags"][v.TAG_PIPELINE_RUN]
    quarantined = pd.read_csv(mlflow.artifacts.download_artifacts(
        run_id=pipeline_run, artifact_path="validation/quarantine.csv", dst_path=str(tmp_path / "q")))  # fmt: skip
    assert len(quarantined) == 30 and set(quarantined["_quarantine_rule"]) == {"not_null:Churn"}
    model_run = client.get_model_version("churn_eu", version["version"]).run_id
    assert ARTIFACT in [a.path for a in client.list_artifacts(model_run, "monitoring")]  # the reference was read

    batch = messy_frame(rows=60, seed=12).dropna().drop(columns="Churn")  # complete rows: in a small batch a
    # blank or two is a larger share than the draft allows (twice the export's)
    batch.to_csv(tmp_path / "batch.csv", index=False, sep=";", decimal=",")
    assert _cli("--params", params, "predict", "--data", tmp_path / "batch.csv", "--model", "churn_eu",
                "--out", tmp_path / "predictions") == 0  # fmt: skip
    (scored,) = (tmp_path / "predictions").glob("*.parquet")
    assert len(pd.read_parquet(scored)) == len(batch)
