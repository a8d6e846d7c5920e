"""Shared test setup. Nothing here touches the network or ../shared."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Before anything imports BentoML or MLflow: a private bento store, no telemetry, a quiet Prefect.
_SESSION_TMP = Path(tempfile.mkdtemp(prefix="mlops-tests-"))
os.environ["BENTOML_HOME"] = str(_SESSION_TMP / "bentoml")
# A Prefect home per session: `make test` runs two pytest workers, and two temporary APIs creating
# the same new SQLite database at once would race its migrations.
os.environ["PREFECT_HOME"] = str(_SESSION_TMP / "prefect")
os.environ["BENTOML_DO_NOT_TRACK"] = "true"
os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# As every driver sets it (flows/runtime.py): once a test has added our loggers to Prefect's, the unit tests
# after it in the same worker log outside any flow run.
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
os.environ.pop("MLFLOW_TRACKING_URI", None)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def _no_tracking_uri_from_other_modules():
    """Each module starts without MLFLOW_TRACKING_URI (mlflow.set_tracking_uri exports it)."""
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield
    os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect API for the whole session (starting one costs ~15 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def isolated_env(home: Path) -> dict[str, str]:
    """The environment for a subprocess that builds bentos in a bento store of its own under ``home``."""
    env = {
        **os.environ,
        "BENTOML_HOME": str(home / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "GIT_PYTHON_REFRESH": "quiet",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def build_in_subprocess(script: str, home: Path, *args: str) -> dict:
    """Run ``script`` (``python -c``) with a bento store of its own under ``home``; the JSON of its last line."""
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", script, str(ROOT), str(home), *args], cwd=ROOT,
                          env=isolated_env(home), capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def make_project(tmp: Path, *, rows: int | None = 300, seed: int = 0) -> Path:
    """A throw-away copy of the project's config with a small sample of the default dataset."""
    from components.data.dataset import read_source, write_parquet

    tmp.mkdir(parents=True, exist_ok=True)
    for name in ("params.yaml", "constraints.txt"):
        shutil.copy(ROOT / name, tmp / name)
    shutil.copytree(ROOT / "contracts", tmp / "contracts")
    frame = read_source("sklearn:breast_cancer")
    if rows is not None:
        frame = frame.sample(n=rows, random_state=seed).sort_index()
    write_parquet(frame, tmp / "data" / "dataset.parquet")
    return tmp


# Small but real settings: every step runs, just with fewer epochs and resamples.
FAST = [
    "train.candidates.mlp.epochs=15",
    "train.candidates.hgb.max_iter=60",
    "promote.n_resamples=200",
]
# FAST with logreg and hgb only: for tests of what comes after choosing (scoring, monitoring).
TWO_CANDIDATES = [*FAST, "train.candidates.rf.enabled=false", "train.candidates.lgbm.enabled=false",
                  "train.candidates.mlp.enabled=false"]  # fmt: skip
# logreg fitted as written and hgb searched (2 trials): the fits the UIs name (`fit logreg`, `fit hgb · trial N`),
# no torch, no infra validation.
NAMED_FITS = [
    *FAST,
    *(f"train.candidates.{c}.enabled=false" for c in ("rf", "lgbm", "mlp")),
    "train.candidates.logreg.search=null",
    "train.search.n_trials=2",
    "train.search.batch_size=2",
    "package.infra_validation.enabled=false",
]


def cli(*argv) -> int:
    """`mlops` in this process (its exit code), arguments as strings."""
    from flows.cli.main import main

    return main([str(a) for a in argv])


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_TMP, ignore_errors=True)
