"""Server mode: the unchanged pipeline against `mlflow server` (database backend, artifacts served by it).

The only difference from the default run is ``MLFLOW_TRACKING_URI=http://127.0.0.1:<port>``. The
server keeps runs and the registry in its database (a SQLite file, or a real PostgreSQL 16 started
from the ``pgserver`` wheel on a temporary data directory, unix socket only) and serves artifacts
itself (``--artifacts-destination``), so the client never touches the artifact directory.
"""

import contextlib
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import FAST, make_project
from tests.e2e.test_prefect_server import background, clean_env, free_port, wait_healthy

pytestmark = pytest.mark.slow
MODEL = "breast-cancer-classifier"


@contextlib.contextmanager
def database(kind: str, tmp: Path):
    """A backend store URI for ``kind``; a PostgreSQL server lives exactly as long as the block."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'server.db'}"
        return
    import pgserver

    postgres = pgserver.get_server(tmp / "pgdata", cleanup_mode="stop")
    try:
        socket_dir = postgres.get_uri().split("host=", 1)[1]
        postgres.psql("CREATE DATABASE mlflow;")
        yield f"postgresql+psycopg2://postgres@/mlflow?host={socket_dir}"
    finally:
        postgres.cleanup()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"mlflow-server-{request.param}")
    port = free_port()
    with database(request.param, tmp) as backend, server_process(backend, port, tmp) as proc:
        yield {"uri": f"http://127.0.0.1:{port}", "store": tmp / "artifact-store", "proc": proc}
    assert proc.poll() is not None, "the mlflow server outlived its test"


@contextlib.contextmanager
def server_process(backend: str, port: int, tmp: Path):
    cmd = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        backend,
        "--artifacts-destination",
        str(tmp / "artifact-store"),
    ]
    env = clean_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    with background(cmd, env, tmp, tmp / "server.log") as proc:
        wait_healthy(f"http://127.0.0.1:{port}/health", proc)
        yield proc


@pytest.fixture(scope="module")
def run_against_server(server, tmp_path_factory, prefect_harness):
    from flows.training import training_pipeline

    project = make_project(tmp_path_factory.mktemp("server-project"))

    patch = pytest.MonkeyPatch()
    patch.setenv("MLFLOW_TRACKING_URI", server["uri"])
    try:
        summary = training_pipeline(params_path=str(project / "params.yaml"), overrides=FAST)
    finally:
        patch.undo()
    return project, summary


def test_pipeline_registers_a_champion_on_the_server(server, run_against_server):
    from mlflow import MlflowClient

    project, summary = run_against_server
    assert summary["version"] == "1" and summary["aliases"] == ["champion"]
    assert summary["tracking_uri"] == server["uri"]
    client = MlflowClient(tracking_uri=server["uri"], registry_uri=server["uri"])
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert champion.version == "1"
    assert champion.tags["dataset_md5"] == summary["dataset_md5"] and champion.tags["completed"] == "true"
    assert champion.tags["bento_tag"] == summary["bento_tag"]
    run = client.get_run(summary["run_id"])
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/"), run.info.artifact_uri


def test_artifacts_live_in_the_servers_store_and_nothing_local(server, run_against_server):
    project, _ = run_against_server
    stored = [p.name for p in server["store"].rglob("*") if p.is_file()]
    assert "validation_report.html" in stored and "summary.json" in stored
    assert any(name.endswith(".skops") for name in stored)
    assert not (project / "mlflow.db").exists() and not (project / "mlartifacts").exists()


def test_champion_loads_through_the_server_and_predicts(server, run_against_server):
    import mlflow

    project, _ = run_against_server
    mlflow.set_tracking_uri(server["uri"])
    mlflow.set_registry_uri(server["uri"])
    raw = pd.read_parquet(project / "data" / "dataset.parquet").drop(columns=["target"]).head(10)
    out = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion").predict(raw)
    assert len(out) == 10 and out["probability"].between(0, 1).all()
