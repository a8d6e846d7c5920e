"""Credentials come from the environment or Prefect Secret blocks and are never recorded.

The retraining flow talks to a real MLflow tracking server over HTTP with a bearer token, through
a proxy that drops every connection for the first seconds (the registry task's retries carry the
run). Then every place a run leaves text behind is searched for the secret values.
"""

import contextlib
import json
import os
import secrets
import socket
import struct
import sys
import threading
import time
from pathlib import Path

import pytest

from components.config import load_settings
from components.data.dataset import file_md5
from components.release.lineage import git_commit
from tests.conftest import make_project
from tests.e2e.test_prefect_server import IDENTITY, background, clean_env, free_port, run, wait_healthy

pytestmark = pytest.mark.slow
MODEL = "breast-cancer-classifier"
TOKEN = "tok-" + secrets.token_hex(16)  # MLFLOW_TRACKING_TOKEN, from the environment
BLOCK_VALUE = "blk-" + secrets.token_hex(16)  # AWS_SECRET_ACCESS_KEY, from a Prefect Secret block


class FlakyProxy:
    """TCP proxy to the tracking server: resets every connection for ``down_for`` s after the first."""

    def __init__(self, target_port: int, down_for: float):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port, self.target, self.down_for = self.sock.getsockname()[1], target_port, down_for
        self.first: float | None = None
        self.dropped, self.seen, self.lock = 0, bytearray(), threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.first = self.first or time.monotonic()
            if time.monotonic() - self.first < self.down_for:
                self.dropped += 1
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()  # RST: the client sees "connection reset", as from a restarting server
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for src, dst, record in ((conn, upstream, True), (upstream, conn, False)):
                threading.Thread(target=self._pump, args=(src, dst, record), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        try:
            while data := src.recv(65536):
                if record and len(self.seen) < 5_000_000:
                    with self.lock:
                        self.seen += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
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
        f"sqlite:///{tmp / 'mlflow.db'}",
        "--default-artifact-root",
        (tmp / "artifacts").as_uri(),
    ]
    env = clean_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")  # no background job runner processes
    with background(cmd, env, tmp, tmp / "server.log") as proc:
        wait_healthy(f"http://127.0.0.1:{port}/health", proc)
        yield {"port": port, "log": tmp / "server.log"}


def seed_champion(project: Path, uri: str) -> None:
    """A champion trained (per its lineage tags) from exactly this project's data, params and commit."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    from components.dataset_settings import load_configured_contract, resolve
    from flows.retraining import current_inputs

    settings = load_settings(project / "params.yaml")
    settings = resolve(settings, load_configured_contract(settings, project))  # as a training run records them
    experiment = client.create_experiment("training-pipeline")
    run_id = client.create_run(experiment).info.run_id
    client.create_registered_model(MODEL)
    tags = {
        "dataset_md5": file_md5(project / settings.data.path),
        "git_commit": git_commit(project),
        # what a training run records for this project's inputs (components.fingerprint.run_inputs)
        "params_hash": current_inputs(settings.as_params(), project, project / settings.data.path).params_hash,
        "decision": "promote",
    }
    mv = client.create_model_version(MODEL, source=f"runs:/{run_id}/model", run_id=run_id, tags=tags)
    client.set_registered_model_alias(MODEL, "champion", mv.version)


def recorded_texts(flow_run_id, uri: str) -> list[str]:
    """Everything the run left behind: Prefect logs, artifacts, run records; MLflow params and tags."""
    from mlflow import MlflowClient
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    time.sleep(2)
    only_run = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    with get_client(sync_client=True) as prefect:
        logs = prefect.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        texts = [log.message for log in logs]
        texts += [json.dumps(a.model_dump(mode="json")) for a in prefect.read_artifacts(flow_run_filter=only_run)]
        texts += [json.dumps(r.model_dump(mode="json")) for r in prefect.read_flow_runs(flow_run_filter=only_run)]
        texts += [json.dumps(t.model_dump(mode="json")) for t in prefect.read_task_runs(flow_run_filter=only_run)]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for r in client.search_runs([e.experiment_id for e in client.search_experiments()]):
        texts.append(json.dumps([r.data.params, r.data.tags]))
    texts += [json.dumps([mv.tags, mv.source]) for mv in client.search_model_versions(f"name='{MODEL}'")]
    texts.append(json.dumps(client.get_registered_model(MODEL).tags))
    return texts


def test_tokens_are_used_but_never_recorded_and_the_registry_outage_is_retried(
    tracking_server, tmp_path, monkeypatch, caplog, capfd, prefect_harness
):
    from prefect.blocks.system import Secret
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows import retraining as rt

    project = make_project(tmp_path / "project", rows=150)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "snapshot"]):
        run(cmd, clean_env(**IDENTITY), project)
    direct = f"http://127.0.0.1:{tracking_server['port']}"
    seed_champion(project, direct)
    Secret(value=BLOCK_VALUE).save("e2e-storage-key", overwrite=True)

    proxy = FlakyProxy(tracking_server["port"], down_for=4)
    for name, value in {
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{proxy.port}",
        "MLFLOW_TRACKING_TOKEN": TOKEN,
        "AWS_SECRET_ACCESS_KEY": "",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    }.items():
        monkeypatch.setenv(name, value)  # MLflow's own HTTP retries off: the task's retries are under test
    caplog.set_level("INFO")
    for ours in ("flows", "components"):
        caplog.set_level("DEBUG", logger=ours)
    try:
        state = rt.retraining(
            params_path=str(project / "params.yaml"),
            secrets={"AWS_SECRET_ACCESS_KEY": "e2e-storage-key"},
            return_state=True,
        )
    finally:
        proxy.close()
    out = state.result()

    assert out["action"] == "skip" and out["adopted"] == "1", out["reason"]
    assert out["secrets_loaded"] == ["AWS_SECRET_ACCESS_KEY"] and os.environ["AWS_SECRET_ACCESS_KEY"] == BLOCK_VALUE
    assert f"Bearer {TOKEN}".encode() in proxy.seen  # the token from the env reached the server
    assert proxy.dropped >= 1
    only_run = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
    with get_client(sync_client=True) as prefect:
        task_runs = prefect.read_task_runs(flow_run_filter=only_run)
    [registry_read] = [t for t in task_runs if t.name.startswith("read-registry")]
    assert registry_read.run_count >= 2 and registry_read.state.is_completed()

    texts = recorded_texts(state.state_details.flow_run_id, direct)
    texts += [r.getMessage() for r in caplog.records]
    captured = capfd.readouterr()
    texts += [captured.out, captured.err, tracking_server["log"].read_text(errors="replace")]
    assert any("fingerprint" in t for t in texts) and any("Retraining: skipped" in t for t in texts)
    for label, value in (("tracking token", TOKEN), ("Secret block value", BLOCK_VALUE)):
        assert not [t[:200] for t in texts if value in t], f"{label} recorded"


def test_redact_hides_credentials_in_command_output(monkeypatch):
    from flows.runtime import redact

    monkeypatch.setenv("MY_SERVICE_TOKEN", TOKEN)
    text = redact(f"push failed: https://user:hunter22@host/x auth={TOKEN}")
    assert TOKEN not in text and "hunter22" not in text and "https://user:***@host/x" in text
