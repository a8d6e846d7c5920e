"""`--model` on status/promote/rollback/lineage/serve, the all-models status, and validate's default contract.

A real SQLite MLflow store in a throw-away project; versions are registered directly (no training),
each on a run that carries the test metric, with `decision` and `bento_tag` tags like the pipeline's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from components.release import registry
from flows.cli import serve as cli_serve
from flows.cli.main import main
from flows.runtime import EXIT_CONFIG, EXIT_NOTHING

ROOT = Path(__file__).resolve().parents[2]
A = "breast-cancer-classifier"  # the default: the configured contract's name
B = "churn-model"
C = "never-promoted"

# name -> [(test_roc_auc or None, decision)] per version, in order
VERSIONS = {
    A: [(0.95, "promoted"), (0.97, "promoted")],
    B: [(0.81, "promoted"), (0.83, "promoted"), (0.80, "rejected")],
    C: [(None, "rejected")],
}


def _project(tmp: Path) -> Path:
    """params.yaml, constraints.txt and contracts/ copied as conftest.make_project does (no dataset needed)."""
    tmp.mkdir(parents=True, exist_ok=True)
    for name in ("params.yaml", "constraints.txt"):
        shutil.copy(ROOT / name, tmp / name)
    shutil.copytree(ROOT / "contracts", tmp / "contracts")
    return tmp


def _register(root: Path) -> None:
    """Register VERSIONS in ``root``'s store; A: champion v2, previous v1; B: champion v2; C: no alias."""
    import mlflow

    registry.configure_tracking(root, experiment="tests")
    client = registry.client()
    for name, versions in VERSIONS.items():
        client.create_registered_model(name)
        for i, (metric, decision) in enumerate(versions, start=1):
            with mlflow.start_run() as run:
                if metric is not None:
                    mlflow.log_metric("test_roc_auc", metric)
            client.create_model_version(
                name,
                source=f"{run.info.artifact_uri}/model",
                run_id=run.info.run_id,
                tags={"decision": decision, "decision_reason": "test", "bento_tag": f"{name}:v{i}abc"},
            )
    registry.set_alias(A, "champion", "2")
    registry.set_alias(A, "previous-champion", "1")
    registry.set_alias(B, "champion", "2")


@pytest.fixture
def empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # keep the CLI away from the real project whatever --params says
    return _project(tmp_path / "project")


@pytest.fixture
def project(empty: Path) -> Path:
    _register(empty)
    return empty


def _cli(root: Path, *argv: str) -> int:
    return main(["--params", str(root / "params.yaml"), *argv])


def _champion(name: str) -> str | None:
    return registry.alias_version(name, "champion")


def test_status_lists_every_model_one_line_each(project: Path, capsys: pytest.CaptureFixture) -> None:
    assert _cli(project, "status") == 0

    header, *lines = capsys.readouterr().out.strip().splitlines()
    assert header.split()[:5] == ["model", "champion", "latest", "versions", "test"]
    assert [line.split() for line in lines] == [
        [A, "2", "2", "2", "roc_auc", "0.9700", "promoted"],  # versions without a task tag: binary
        [B, "2", "3", "3", "roc_auc", "0.8300", "rejected"],
        [C, "-", "1", "1", "-", "rejected"],
    ]


def test_status_with_no_models_says_to_run(empty: Path, capsys: pytest.CaptureFixture) -> None:
    assert _cli(empty, "status") == EXIT_NOTHING
    assert "mlops run" in capsys.readouterr().out


def test_status_model_lists_only_that_models_versions(project: Path, capsys: pytest.CaptureFixture) -> None:
    assert _cli(project, "status", "--model", B) == 0

    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"registered model {B}"
    versions = [line.split()[0] for line in out.splitlines()[2:]]
    assert versions == ["3", "2", "1"]
    assert "0.8300" in out and "0.9700" not in out


def test_promote_moves_only_the_named_models_champion(project: Path, capsys: pytest.CaptureFixture) -> None:
    assert _cli(project, "promote", "--model", B, "1", "--reason", "x") == 0

    assert f"{B} v1 is now @champion" in capsys.readouterr().out
    assert (_champion(B), registry.alias_version(B, "previous-champion")) == ("1", "2")
    assert _champion(A) == "2"


def test_promote_without_model_acts_on_the_contracts_model(project: Path) -> None:
    assert _cli(project, "promote", "1", "--reason", "x") == 0
    assert (_champion(A), _champion(B)) == ("1", "2")


def test_rollback_moves_only_the_named_model(project: Path, capsys: pytest.CaptureFixture) -> None:
    assert _cli(project, "rollback", "--model", A) == 0

    assert f"{A}: @champion is back on v1" in capsys.readouterr().out
    assert (_champion(A), _champion(B)) == ("1", "2")
    # B has no previous champion: a one-line error, exit 5, B untouched
    assert _cli(project, "rollback", "--model", B) == EXIT_NOTHING
    assert B in capsys.readouterr().err and _champion(B) == "2"


def test_lineage_describes_the_named_models_version(project: Path, capsys: pytest.CaptureFixture) -> None:
    assert _cli(project, "lineage", "--model", B, "--alias", "champion") == 0
    out = capsys.readouterr().out
    assert f"{B} v2 (@champion)" in out and f"{B}:v2abc" in out

    assert _cli(project, "lineage", "--model", B, "--version", "9") == EXIT_NOTHING
    assert capsys.readouterr().err.strip() == f"error: no version of '{B}' matches --version 9"


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--model", "nope"],
        ["promote", "--model", "nope", "1", "--reason", "x"],
        ["rollback", "--model", "nope"],
        ["lineage", "--model", "nope", "--alias", "champion"],
        ["serve", "--model", "nope"],
    ],
    ids=lambda argv: argv[0],
)
def test_unknown_model_is_one_line_naming_it(
    project: Path, argv: list[str], capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_serve.os, "execvp", lambda file, args: pytest.fail("must not exec"))

    assert _cli(project, *argv) == EXIT_NOTHING

    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'nope'" in err and "Traceback" not in err
    assert "registered: " in err  # and which models there are


@pytest.mark.parametrize("model, tag", [(B, f"{B}:v2abc"), (None, f"{A}:v2abc")])
def test_serve_execs_the_named_models_champion_bento(
    project: Path, model: str | None, tag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(cli_serve.os, "execvp", lambda file, argv: calls.append(argv))

    assert _cli(project, "serve", "--port", "3999", *(["--model", model] if model else [])) == 0

    (argv,) = calls
    assert argv[-6:] == ["serve", tag, "--host", "127.0.0.1", "--port", "3999"]


def _null_contract(root: Path) -> None:
    params = root / "params.yaml"
    text = params.read_text()
    assert "contract: contracts/breast_cancer.yaml" in text
    params.write_text(text.replace("contract: contracts/breast_cancer.yaml", "contract: null"))


def test_validate_defaults_to_the_params_contract(empty: Path, capsys: pytest.CaptureFixture) -> None:
    from components.data.dataset import read_source

    data = empty / "batch.csv"
    read_source("sklearn:breast_cancer").sample(n=120, random_state=0).to_csv(data, index=False)

    assert _cli(empty, "validate", "--data", str(data), "--report-dir", str(empty / "report")) == 0
    assert "accepted" in capsys.readouterr().out

    _null_contract(empty)
    assert _cli(empty, "validate", "--data", str(data)) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "validate.contract" in err and "--contract" in err


def test_no_model_and_no_contract_is_a_config_error(empty: Path, capsys: pytest.CaptureFixture) -> None:
    _null_contract(empty)

    assert _cli(empty, "promote", "1", "--reason", "x") == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "promote.registered_model" in err and "validate.contract" in err
