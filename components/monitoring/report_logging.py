"""A drift report kept in MLflow beside the model version it monitors.

The report files go to the version's own model run (``mv.run_id``) under
``monitoring/<batch base name>/``, so the MLflow UI shows each batch's report next to the model
it judged; the version's tags say which batch was seen last and its share of drifted columns.
This is the monitoring step whose job is the registry, so it talks to MLflow.
"""

from __future__ import annotations

from pathlib import Path

TAG_LAST_BATCH = "monitor.last_batch"  # model-version tag: base name of the last batch scored and monitored
TAG_LAST_DRIFT_SHARE = "monitor.last_drift_share"  # model-version tag: that batch's share of drifted columns
ARTIFACT_DIR = "monitoring"


def log_drift_report(
    name: str, version: str, run_id: str, files: list[Path], batch_name: str, share_drifted: float
) -> str:
    """Log ``files`` on ``run_id`` under ``monitoring/<batch_name>`` and tag ``name`` v``version``;
    returns the artifact folder (``runs:/<run_id>/monitoring/<batch_name>``)."""
    from components.release import registry

    client = registry.client()
    folder = f"{ARTIFACT_DIR}/{batch_name}"
    for path in files:
        client.log_artifact(run_id, str(path), artifact_path=folder)
    client.set_model_version_tag(name, str(version), TAG_LAST_BATCH, batch_name)
    client.set_model_version_tag(name, str(version), TAG_LAST_DRIFT_SHARE, f"{share_drifted:.6g}")
    return f"runs:/{run_id}/{folder}"
