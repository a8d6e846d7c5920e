"""The training flow end to end on a small sample: real Prefect, MLflow (SQLite), GX and BentoML."""

import json
import re
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from components.release import registry
from tests.conftest import FAST, make_project

pytestmark = pytest.mark.slow
MODEL = "breast-cancer-classifier"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="module")
def two_runs(project, prefect_harness):
    from flows.training import training_pipeline

    first = training_pipeline(params_path=str(project / "params.yaml"), overrides=FAST)
    second = training_pipeline(params_path=str(project / "params.yaml"), overrides=FAST, force=True)
    return first, second


def test_first_run_registers_a_champion_that_loads_from_raw_features(project, two_runs):
    first, _ = two_runs
    assert first["version"] == "1" and first["aliases"] == ["champion"]
    registry.configure_tracking(project)
    raw = pd.read_parquet(project / "data" / "dataset.parquet").drop(columns=["target"]).head(20)
    out = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion").predict(raw)
    assert list(out.columns) == ["label", "probability"] and out["label"].isin([0, 1]).all()


def test_version_carries_lineage_tags_and_an_exact_bento(project, two_runs):
    import bentoml

    first, _ = two_runs
    registry.configure_tracking(project)
    tags = registry.client().get_model_version(MODEL, first["version"]).tags
    assert tags["dataset_md5"] == first["dataset_md5"]
    assert {"git_commit", "params_hash", "candidate", "validation", "decision", "gate.decision"} <= set(tags)
    assert tags["bento_tag"] == first["bento_tag"] and not first["bento_tag"].endswith(":latest")
    bento = bentoml.bentos.get(first["bento_tag"])
    assert bento.info.labels["model_version"] == first["version"]
    assert [str(m.tag) for m in bento.info.all_models]
    config = json.loads((Path(bento.path) / "src" / "bento_config.json").read_text())
    assert config["low_confidence_threshold"] == 0.6 and config["max_batch"] == 1000  # from params serve.*


def test_mlflow_tells_the_story_of_a_run(project, two_runs):
    """One experiment named after the model; the parent run named by model, data and driver, its description the
    summary with a link to the version, the gate's verdict in its tags; the decision names its challenger; the
    registered model says what it is; each version tag states a fact once."""
    first, second = two_runs
    registry.configure_tracking(project)
    client = registry.client()
    experiment = client.get_experiment_by_name(MODEL)
    assert experiment is not None and client.get_experiment_by_name("training-pipeline") is None
    parent = client.get_run(second["run_id"])
    assert parent.info.experiment_id == experiment.experiment_id
    assert parent.info.run_name == f"{MODEL} · {second['dataset_md5'][:8]} · prefect"
    tags = parent.data.tags
    assert tags["gate.decision"] == "promote" and tags["gate.reason"] == second["decision"]
    assert tags["registered_version"] == second["version"] == tags["gate.challenger_version"]
    description = tags["mlflow.note.content"]
    assert description.startswith(f"Registered [{MODEL} v2](#/models/{MODEL}/versions/2).")
    assert second["decision"] in description and "| candidate |" in description
    decision = json.loads(Path(mlflow.artifacts.download_artifacts(f"runs:/{second['run_id']}/promotion_decision.json"))
                          .read_text())  # fmt: skip
    assert decision["challenger_version"] == "2" and decision["champion_version"] == "1"

    about = client.get_registered_model(MODEL).description
    assert "a binary model predicting `target`" in about and "`@champion`" in about and "`@challenger`" in about
    version_tags = client.get_model_version(MODEL, second["version"]).tags
    assert "gate.reason" not in version_tags and version_tags["decision_reason"] == second["decision"]
    assert [k for k, x in version_tags.items() if x == second["decision"]] == ["decision_reason"]
    assert version_tags["promotion.reason"] == f"passed the gate and infra validation of run {second['run_id']}"


def test_same_data_and_params_give_identical_metrics(two_runs):
    first, second = two_runs
    assert first["candidates"] == second["candidates"]
    assert first["test_metrics"] == second["test_metrics"]
    assert first["chosen"] == second["chosen"]


def test_identical_retrain_is_non_inferior_so_champion_moves_and_previous_is_kept(project, two_runs):
    _, second = two_runs
    registry.configure_tracking(project)
    assert second["aliases"] == ["champion"]
    assert registry.alias_version(MODEL, "champion") == second["version"] == "2"
    assert registry.alias_version(MODEL, "previous-champion") == "1"


def test_rerun_with_nothing_changed_trains_and_registers_nothing(project, two_runs):
    from flows.training import training_pipeline

    registry.configure_tracking(project)
    before = len(registry.list_versions(MODEL))
    third = training_pipeline(params_path=str(project / "params.yaml"), overrides=FAST)
    assert third["skipped"] is True and "nothing changed since" in third["markdown"]
    assert len(registry.list_versions(MODEL)) == before
    changed = training_pipeline(
        params_path=str(project / "params.yaml"), overrides=[*FAST, "train.candidates.hgb.learning_rate=0.2"]
    )
    assert changed["skipped"] is False and len(registry.list_versions(MODEL)) == before + 1


def test_nothing_changed_from_the_cli_is_answered_before_prefect_starts(project, two_runs, capsys):
    """`mlops run` on the temporary API with nothing changed: no flow run, no MLflow run, no version; it says
    which finished version it matched and which version keeps @champion."""
    from prefect.client.orchestration import get_client

    from flows.cli.main import main

    registry.configure_tracking(project)
    client = registry.client()
    experiment = client.get_experiment_by_name(MODEL).experiment_id
    before = (len(registry.list_versions(MODEL)), len(client.search_runs([experiment])))
    with get_client(sync_client=True) as prefect:
        flow_runs = len(prefect.read_flow_runs())
        argv = ["--params", str(project / "params.yaml"), "run", *(a for s in FAST for a in ("--set", s))]
        assert main(argv) == 0
        assert len(prefect.read_flow_runs()) == flow_runs
    printed = capsys.readouterr().out
    champion = registry.alias_version(MODEL, "champion")
    assert f"nothing changed since {MODEL} v2 " in printed and f"@champion stays on v{champion}" in printed
    assert (len(registry.list_versions(MODEL)), len(client.search_runs([experiment]))) == before


def test_summary_names_the_next_commands(two_runs):
    md = two_runs[0]["markdown"]
    assert "mlflow ui --backend-store-uri sqlite:///" in md
    # the project is not the current folder: the commands name its params, so they act on its store
    assert re.search(r"`mlops --params \S+/params\.yaml serve --model breast-cancer-classifier`", md), md
    assert "(chosen)" in md


def _bad_variants(frame: pd.DataFrame) -> dict[str, tuple[object, str]]:
    """name -> (frame or raw CSV text, text the error must contain: the rule or column)."""
    nulls = frame.copy()
    nulls.loc[:5, "mean radius"] = None
    out_of_range = frame.copy()
    out_of_range.loc[:10, "mean radius"] = -5.0
    extra = frame.assign(leak=1.0)
    labels = frame.copy()
    labels.loc[:3, "target"] = 2
    header = ",".join(frame.columns)
    return {
        "nulls": (nulls, "mean radius"),
        "out-of-range": (out_of_range, "mean radius"),
        "missing-column": (frame.drop(columns=["mean texture"]), "mean texture"),
        "extra-column": (extra, "leak"),
        "labels-outside-set": (labels, "target"),
        "single-class": (frame[frame["target"] == 1], "target"),
        "empty-file": ("", "empty"),
        "header-only": (header + "\n", "no rows"),
    }


@pytest.mark.parametrize(
    "variant",
    [
        "nulls",
        "out-of-range",
        "missing-column",
        "extra-column",
        "labels-outside-set",
        "single-class",
        "empty-file",
        "header-only",
    ],
)
def test_rejected_data_stops_before_training_and_registers_nothing(project, two_runs, tmp_path, variant):
    from flows.cli.main import main

    good = pd.read_parquet(project / "data" / "dataset.parquet")
    content, expected = _bad_variants(good)[variant]
    bad_path = tmp_path / "bad.csv"
    if isinstance(content, str):
        bad_path.write_text(content)
    else:
        content.to_csv(bad_path, index=False)
    registry.configure_tracking(project)
    before, champion = len(registry.list_versions(MODEL)), registry.alias_version(MODEL, "champion")
    code = main(["--params", str(project / "params.yaml"), "run", "--data", str(bad_path), "--force"])
    assert code == 4
    assert len(registry.list_versions(MODEL)) == before
    assert registry.alias_version(MODEL, "champion") == champion


def test_rejection_message_names_rule_column_and_report(project, two_runs, tmp_path, capsys):
    from flows.cli.main import main

    bad = pd.read_parquet(project / "data" / "dataset.parquet")
    bad.loc[:10, "mean radius"] = -5.0
    bad.to_parquet(tmp_path / "bad.parquet")
    assert main(["--params", str(project / "params.yaml"), "run", "--data", str(tmp_path / "bad.parquet")]) == 4
    err = capsys.readouterr().err
    assert "range" in err and "mean radius" in err and "validation_report.html" in err


def test_bring_your_own_csv_with_its_own_contract(project, two_runs, tmp_path):
    """A CSV with a categorical column and an id column marked not-a-feature, through the whole pipeline."""
    import numpy as np

    from components.data.contract_inference import infer_contract
    from components.data.contract_yaml import save_contract
    from flows.cli.main import main

    rng = np.random.default_rng(1)
    n = 400
    x = rng.normal(size=n)
    plan = rng.choice(["basic", "pro", "team"], size=n)
    churned = np.where(x + (plan == "basic") + rng.normal(scale=0.5, size=n) > 0.6, "yes", "no")
    frame = pd.DataFrame({"customer_id": np.arange(n), "tenure": x * 10 + 50, "plan": plan, "churned": churned})
    frame.loc[::25, "tenure"] = None
    frame.to_csv(tmp_path / "churn.csv", index=False)
    contract = infer_contract(frame, "churned", name="churn")
    save_contract(contract, tmp_path / "churn.yaml")
    assert "customer_id" not in contract.feature_columns()
    assert contract.evaluation["slices"]["columns"] == ["plan"]  # drafted: no --set needed for slices or names
    params = str(project / "params.yaml")
    code = main(
        [
            "--params",
            params,
            "run",
            "--data",
            str(tmp_path / "churn.csv"),
            "--contract",
            str(tmp_path / "churn.yaml"),
            *sum((["--set", o] for o in FAST), []),
        ]
    )
    assert code == 0
    registry.configure_tracking(project)
    version = registry.alias_version("churn", "champion")
    model = mlflow.pyfunc.load_model(f"models:/churn/{version}")
    out = model.predict(frame.drop(columns=["churned"]).head(5))
    assert set(out["label"]) <= {"yes", "no"}


def test_crash_between_registration_and_promotion_leaves_champion_alone(project, two_runs, monkeypatch):
    """Kill promotion half-way: the new version exists without an alias; a re-run converges."""
    from flows.training import training_pipeline

    def boom(*args, **kwargs):
        raise RuntimeError("injected crash before promotion")

    monkeypatch.setattr("components.release.promotion.compare_and_set_champion", boom)
    params = str(project / "params.yaml")
    registry.configure_tracking(project)
    champion_before = registry.alias_version(MODEL, "champion")
    with pytest.raises(RuntimeError, match="injected crash"):
        training_pipeline(params_path=params, overrides=[*FAST, "promote.margin=0.02"])
    registry.configure_tracking(project)
    orphan = registry.list_versions(MODEL)[0]
    assert orphan["aliases"] == [] and "completed" not in orphan["tags"]
    failed = registry.client().get_run(orphan["tags"]["pipeline_run_id"])  # the run says why, on its page
    assert failed.info.status == "FAILED"
    assert failed.data.tags["error"] == "RuntimeError: injected crash before promotion"
    assert failed.data.tags["mlflow.note.content"].startswith("**FAILED**: RuntimeError: injected crash")
    assert orphan["tags"]["decision"] == "failed"
    assert registry.alias_version(MODEL, "champion") == champion_before
    monkeypatch.undo()
    again = training_pipeline(params_path=params, overrides=[*FAST, "promote.margin=0.02"])
    assert again["skipped"] is False and again["aliases"] == ["champion"]
    assert registry.alias_version(MODEL, "champion") == again["version"]


def test_lineage_and_status_print_the_whole_chain(project, two_runs, capsys):
    from flows.cli.main import main

    params = str(project / "params.yaml")
    assert main(["--params", params, "lineage", "--alias", "champion"]) == 0
    out = capsys.readouterr().out
    for field in ("bento", "model version", "run", "dataset", "git commit", "params hash", "validation", "decision"):
        assert field in out
    registry.configure_tracking(project)
    champion = registry.alias_version(MODEL, "champion")
    bento = registry.client().get_model_version(MODEL, champion).tags["bento_tag"]
    assert bento in out and "@champion" in out
    assert main(["--params", params, "lineage", "--bento", bento]) == 0
    assert f"v{champion}" in capsys.readouterr().out
    assert main(["--params", params, "status"]) == 0  # every model, one line each
    assert MODEL in capsys.readouterr().out
    assert main(["--params", params, "status", "--model", MODEL]) == 0
    table = capsys.readouterr().out
    assert "champion" in table and "previous-champion" in table and "test roc_auc" in table


def test_missing_dataset_and_bad_params_exit_with_clear_codes(project, tmp_path, capsys):
    from flows.cli.main import main

    params = str(project / "params.yaml")
    assert main(["--params", params, "run", "--data", str(tmp_path / "nope.parquet")]) == 3
    assert "dvc pull" in capsys.readouterr().err
    assert main(["--params", params, "run", "--set", "train.candidates.hgb.learning_rat=1"]) == 2
    assert "train.candidates.hgb.learning_rat" in capsys.readouterr().err


def test_failed_infra_validation_keeps_the_champion_and_says_why(project, two_runs):
    """The bento is built and served for real; an impossible latency budget must block promotion."""
    from flows.training import training_pipeline

    registry.configure_tracking(project)
    champion = registry.alias_version(MODEL, "champion")
    out = training_pipeline(
        params_path=str(project / "params.yaml"),
        overrides=[*FAST, "package.infra_validation.p95_budget_ms=0.001", "promote.margin=0.05"],
    )
    assert out["aliases"] == [] and out["bento_tag"]
    assert any("infra validation failed" in n for n in out["notes"])
    assert registry.alias_version(MODEL, "champion") == champion
    tags = registry.client().get_model_version(MODEL, out["version"]).tags
    assert tags["decision"] == "keep" and "p95" in tags["infra_validation"]
