"""What the Prefect UI shows of a training run, read back through the Prefect client: task runs named
by what they do, our own log lines in the flow run's logs (and no "Finished in state Completed()"),
the run tagged with its model and dataset, and the promotion decision as a markdown table."""

import os
from uuid import UUID

import pytest

from flows.runtime import TASK_COMPLETED_LINE, prepare_environment
from tests.conftest import NAMED_FITS, make_project

MODEL = "breast-cancer-classifier"


@pytest.fixture(scope="module")
def run(tmp_path_factory, prefect_harness):
    """One training run (about a minute with the harness); its flow run id and what it returned."""
    from prefect.logging.handlers import APILogHandler

    from flows.training import training_pipeline

    root = make_project(tmp_path_factory.mktemp("prefect-ui"), rows=200)
    state = training_pipeline(params_path=str(root / "params.yaml"), overrides=NAMED_FITS, return_state=True)
    result = state.result()
    APILogHandler().flush()  # the log worker sends in batches: wait for the last one
    return state.state_details.flow_run_id, result


@pytest.fixture(scope="module")
def client(run):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as c:
        yield c


def _task_run_names(client, flow_run_id: UUID) -> list[str]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return sorted(r.name for r in runs)


def _messages(client, flow_run_id: UUID) -> list[str]:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    return [log.message for log in client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))]


@pytest.mark.slow
def test_task_runs_are_named_by_what_they_do(run, client):
    flow_run_id, result = run
    names = _task_run_names(client, flow_run_id)
    assert {"fit logreg", "fit hgb · trial 0", "fit hgb · trial 1", "log logreg", "log hgb"} <= set(names), names
    assert {"load dataset.parquet", "validate dataset.parquet", "gate", f"register {MODEL}"} <= set(names), names
    assert f"promote {MODEL} v{result['version']}" in names
    assert not [n for n in names if n.startswith(("fit-candidate-", "log-candidate-"))], names


@pytest.mark.slow
def test_project_log_lines_reach_the_flow_run_and_completed_lines_do_not(run, client):
    flow_run_id, result = run
    messages = _messages(client, flow_run_id)
    # components.training.search and components.release.promotion log through `logging`, not Prefect's run logger
    assert any(m.startswith("search hgb: best trial") for m in messages), messages
    assert any(f"{MODEL} v{result['version']} is now @champion" in m for m in messages), messages
    assert TASK_COMPLETED_LINE not in messages
    assert not [m for m in messages if m.startswith("Finished in state Completed")], messages


@pytest.mark.slow
def test_flow_run_is_tagged_with_model_and_dataset(run, client):
    flow_run_id, result = run
    tags = client.read_flow_run(flow_run_id).tags
    assert f"model:{MODEL}" in tags and f"dataset:{result['dataset_md5'][:12]}" in tags, tags


@pytest.mark.slow
def test_promotion_decision_artifact_is_a_markdown_table(run, client):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    flow_run_id, _ = run
    (artifact,) = client.read_artifacts(
        artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["promotion-decision"]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
        )
    )
    body = artifact.data
    assert artifact.type == "markdown" and "```json" not in body and not body.lstrip().startswith("{")
    assert "| field | value |" in body and "|---|---|" in body
    assert "| decision | promote |" in body and "| champion version | none (no champion yet) |" in body


def test_extra_loggers_are_appended_to_the_users(monkeypatch, tmp_path):
    monkeypatch.setenv("PREFECT_LOGGING_EXTRA_LOGGERS", "mylib, flows")
    monkeypatch.delenv("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", raising=False)
    prepare_environment(tmp_path)
    prepare_environment(tmp_path)  # idempotent
    assert os.environ["PREFECT_LOGGING_EXTRA_LOGGERS"] == "mylib,flows,components,mlops"
    assert os.environ["PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW"] == "ignore"
