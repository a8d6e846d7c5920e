"""The loop on a real `prefect server` (127.0.0.1) and a process worker: drift → event → retraining → gate.

`prefect deploy --all` creates the deployments and the `retrain-on-drift` automation; a champion is
trained by `training-pipeline/manual`; `batch-inference/nightly` scores a drifted batch twice. The
first run's alarm emits `mlops.model.drift`, the second is inside the cooldown; the automation
starts exactly one `retraining` run, which trains on the champion's data plus the batch's labelled
rows, and the gate decides on the new version.
"""

import json
import time

import httpx
import pytest
import yaml

from components import vocabulary as v
from components.data.dataset import file_md5, read_source
from components.monitoring import alarms
from components.monitoring import labels as lb
from tests.e2e.test_prefect_server import (
    IDENTITY,
    artifact,
    clean_env,
    copy_project,
    deployed_with_worker,
    free_port,
    mlflow_client,
    run,
    start_run,
    wait_run,
)

pytestmark = pytest.mark.slow
MODEL = "breast-cancer-classifier"
BATCH = "incoming/drifted.parquet"
# Every run of the copy reads these from params.yaml (the triggered retraining gets no overrides):
# the loop is under test, not the models.
SMALL = {("train", "candidates", "mlp", "enabled"): False, ("train", "candidates", "rf", "enabled"): False,
         ("train", "candidates", "lgbm", "enabled"): False, ("train", "candidates", "hgb", "max_iter"): 30,
         ("promote", "n_resamples"): 200}  # fmt: skip


def small_params(project) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    for keys, value in SMALL.items():
        section = params
        for key in keys[:-1]:
            section = section[key]
        section[keys[-1]] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = clean_env(**IDENTITY)
    run(["git", "commit", "-q", "-am", "small models"], env, project)


def drifted_batch_with_labels(project) -> str:
    """The 200 largest tumours (mostly malignant): most measurements shift. Their labels are on file
    already (`mlops monitor --labels` of an earlier delivery of the same batch): the labelled rows."""
    source = read_source("sklearn:breast_cancer")
    batch = source.sort_values("mean area", ascending=False).head(200).reset_index(drop=True)
    (project / "incoming").mkdir()
    batch.drop(columns=["target"]).to_parquet(project / BATCH, index=False)
    md5 = file_md5(project / BATCH)
    lb.save_labelled(project, md5, batch.rename_axis("batch_row"))
    return md5


def flow_runs(api: str, deployment_id: str) -> list[dict]:
    body = {"deployments": {"id": {"any_": [deployment_id]}}}
    return httpx.post(f"{api}/flow_runs/filter", json=body, timeout=10).json()


def triggered_retrainings(api: str, deployment_id: str) -> list[dict]:
    """Runs of the retraining deployment the automation created (the cron's carry no drift_batch)."""
    return [r for r in flow_runs(api, deployment_id) if (r.get("parameters") or {}).get("drift_batch")]


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("drift-loop")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = clean_env(PREFECT_HOME=str(tmp / "prefect-home"), PREFECT_API_URL=api, PREFECT_UI_ENABLED="false",
                    PREFECT_SERVER_ANALYTICS_ENABLED="false")  # fmt: skip
    project = copy_project(tmp / "project")
    small_params(project)
    md5 = drifted_batch_with_labels(project)
    with deployed_with_worker(tmp, env, project, port) as stack:
        deps = {d["name"]: d for d in httpx.post(f"{api}/deployments/filter", json={}, timeout=10).json()}
        training = wait_run(stack, start_run(stack, "training-pipeline/manual", {}))
        # Both queued at once: the worker (one run at a time) scores them before the triggered retraining.
        queued = [start_run(stack, "batch-inference/nightly", {"data": BATCH}) for _ in range(2)]
        nightly = [wait_run(stack, run_id) for run_id in queued]
        deadline = time.monotonic() + 480
        while time.monotonic() < deadline:  # the automation's run: created, picked up, finished
            found = triggered_retrainings(api, deps["scheduled"]["id"])
            if found and all(r["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED") for r in found):
                break
            time.sleep(3)
        retraining = [wait_run(stack, r["id"]) for r in triggered_retrainings(api, deps["scheduled"]["id"])]
        time.sleep(5)  # a second event, had there been one, would have made its run by now
        yield stack | {"deployments": deps, "training": training, "nightly": nightly,
                       "retraining": retraining, "md5": md5}  # fmt: skip


def test_deploy_creates_the_nightly_scoring_and_the_drift_automation(loop):
    nightly = loop["deployments"]["nightly"]
    assert "batch-inference/nightly" in loop["deployed"]
    [schedule] = nightly["schedules"]
    assert schedule["schedule"]["cron"] == "0 5 * * *" and "data" in nightly["parameters"]
    automations = httpx.post(f"{loop['api']}/automations/filter", json={}, timeout=10).json()
    [automation] = [a for a in automations if a["name"] == "retrain-on-drift"]
    assert automation["enabled"] and automation["trigger"]["expect"] == ["mlops.model.drift"]
    [action] = automation["actions"]
    assert action["type"] == "run-deployment" and action["deployment_id"] == loop["deployments"]["scheduled"]["id"]


def test_one_drift_event_for_two_drifted_batches(loop):
    body = {"filter": {"event": {"name": ["mlops.model.drift"]}}, "limit": 50}
    events = httpx.post(f"{loop['api']}/events/filter", json=body, timeout=10).json()["events"]
    [event] = events
    assert event["resource"]["prefect.resource.id"] == f"mlops.model.{MODEL}"
    payload = event["payload"]
    assert payload["version"] == "1" and payload["kind"] == "drift" and payload["batch"].endswith(BATCH)
    assert payload["statistics"]["share_drifted"] > 0.5 and payload["statistics"]["batch_md5"] == loop["md5"]

    client = mlflow_client(loop["project"])
    recorded = [json.loads(mv.tags[alarms.TAG_LAST_ALARM]) for mv in client.search_model_versions(f"name='{MODEL}'")
                if alarms.TAG_LAST_ALARM in mv.tags]  # fmt: skip
    suppressed = [r for r in recorded if not r["emitted"]]
    assert suppressed and suppressed[0]["suppressed_by"]  # the second nightly run: inside the cooldown
    assert client.get_registered_model(MODEL).tags[alarms.TAG_LAST_EVENT].split("|")[1] == event["id"]


def test_the_event_starts_exactly_one_retraining_on_the_labelled_batch(loop):
    [retraining] = loop["retraining"]
    assert retraining["state"]["type"] == "COMPLETED"
    assert retraining["parameters"]["drift_batch"].endswith(BATCH)
    assert retraining["parameters"]["drift_model"] == MODEL
    summary = artifact(loop, retraining["id"], "retraining-summary")
    assert "# Retraining: trained" in summary and "trigger: mlops.model.drift" in summary
    assert "plus 200 labelled rows of " in summary and f"{BATCH} (md5 {loop['md5'][:12]})" in summary
    assert "500 rows" in summary


def test_the_gate_decides_on_the_new_version(loop):
    client = mlflow_client(loop["project"])
    new = client.get_model_version(MODEL, "2")
    assert new.tags[v.TAG_DECISION] in (v.DECISION_PROMOTE, v.DECISION_KEEP) and new.tags[v.TAG_DECISION_REASON]
    assert new.tags["retraining.labelled_batches"] == loop["md5"]
    assert new.tags["retraining.trigger"].startswith(f"mlops.model.drift of {MODEL}")
    assert len(client.search_model_versions(f"name='{MODEL}'")) == 2
