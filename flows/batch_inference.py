"""The `batch-inference` Prefect flow: score a batch file with the model's @champion.

resolve the champion to its exact version → its contract → its training data (drift reference)
→ load it → validate and score the batch chunk by chunk (here or on Dask, ``batch.parallel``)
→ predictions, metadata, validation and drift reports → the drift report logged on the
version's model run in MLflow.
The work is in ``components.inference`` and ``components.monitoring``; Prefect adds named tasks,
retries on registry I/O and markdown artifacts (``batch-inference``, ``drift-report``).
``mlops predict`` runs this flow.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from components.inference import batch, champion
from components.inference.parallel_scoring import ScoringCluster
from components.monitoring import alarms, drift_report, report_logging
from components.validation.report import DataRejectedError


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry registry I/O, but not an answer that another try cannot change (no champion, a bad contract)."""
    from components.config import ConfigError
    from components.data.contract import ContractError

    try:
        state.result()
    except (champion.NoChampionError, ConfigError, ContractError):
        return False
    except Exception:
        return True
    return False


IO_RETRIES = {"retries": 3, "retry_delay_seconds": [2, 5, 15], "retry_condition_fn": _transient}

# Task runs are named by what they do (``resolve <model>@champion``, ``score <batch file>``): the Prefect UI lists them.
resolve_task = task(name="resolve-champion", task_run_name="resolve {name}@{alias}",
                    **IO_RETRIES)(champion.resolve_champion)  # fmt: skip
contract_task = task(name="version-contract", task_run_name="contract of {champion.name} v{champion.version}",
                     **IO_RETRIES)(champion.version_contract)  # fmt: skip
reference_task = task(name="drift-reference", task_run_name="drift reference of {champion.name} v{champion.version}")(
    champion.training_reference
)
# The scorer is a closure over the loaded model: never cache or persist it between runs.
load_task = task(name="load-model", task_run_name="load {champion.name} v{champion.version}", cache_policy=None,
                 persist_result=False, **IO_RETRIES)(champion.load_scorer)  # fmt: skip
score_task = task(name="score-batch", task_run_name=lambda parameters: f"score {Path(parameters['data_path']).name}",
                  cache_policy=None)(batch.score_batch)  # fmt: skip
log_drift_task = task(name="log-drift-report", task_run_name="log drift report on {name} v{version}",
                      **IO_RETRIES)(report_logging.log_drift_report)  # fmt: skip
alarm_task = task(name="drift-alarm", task_run_name="drift alarm", cache_policy=None,
                  **IO_RETRIES)(alarms.alarm_on_drift)  # fmt: skip


def publish_drift(meta: dict[str, Any], version: champion.Champion, data_path: Path, cooldown_hours: float) -> None:
    """The batch's drift report beside the version it monitors (MLflow), in the Prefect UI, and its alarm.

    Over ``monitor.drift_share`` the alarm emits `mlops.model.drift` (outside the cooldown), which
    starts the retraining deployment's trigger (prefect.yaml).
    """
    logger = get_run_logger()
    report = meta["drift_report"]
    if report is None:  # rejected in its first chunk: nothing was sampled
        return
    base, name = Path(meta["metadata_path"]).stem, version.name
    files = [Path(meta["drift"]["report"]["html"]), Path(meta["drift"]["report"]["json"])]
    run_id = version.model_run_id or version.run_id
    if run_id:
        meta["drift"]["mlflow"] = log_drift_task(name, version.version, run_id, files, base, report["share_drifted"])
    else:
        logger.warning("v%s has no MLflow run: the drift report stays in %s only", version.version, files[0].parent)
    markdown = drift_report.drift_markdown(report, f"Drift report: {data_path.name}")
    create_markdown_artifact(markdown, key="drift-report", description=f"drift of batch {base} vs its reference")
    alarm = alarm_task(report, name=name, version=version.version, batch=str(data_path), cooldown_hours=cooldown_hours)
    if alarm is not None:
        meta["alarm"] = alarm
        sent = alarms.describe_sending(alarm)
        logger.warning("drift alarm on %s v%s: %s (%s)", name, version.version, alarm["reason"], sent)


def render_markdown(meta: dict[str, Any]) -> str:
    """The run's summary: where the predictions are, the rows, drift, the version that scored them."""
    m, rows, drift = meta["model"], meta["rows"], meta["drift"]
    lines = [
        f"# Batch inference: {Path(meta['batch']['path']).name}",
        "",
        f"- model: {m['name']} v{m['version']} (@{m['alias']}, {m['uri']}, task {m['task']})",
        f"- batch: {meta['batch']['path']} (md5 {meta['batch']['md5']})",
        f"- rows: {rows['read']} read, {rows['scored']} scored, {rows['quarantined']} quarantined",
        f"- predictions: {meta['predictions'] or 'none (batch rejected)'}",
        f"- metadata: {meta.get('metadata_path', '-')}",
        f"- contract: {meta['contract']['source']}",
        f"- validation report: {meta['validation']['report']}",
        f"- drift: {drift['verdict']}" + (f" vs {drift['reference']}" if drift.get("reference") else ""),
        f"- drift report: {(drift.get('report') or {}).get('html', 'none')}",
        "- timings (s): " + ", ".join(f"{k} {x:.2f}" for k, x in meta["timings"].items()),
    ]
    return "\n".join(lines)


@flow(name="batch-inference")
def batch_inference(
    data: str,
    model: str | None = None,
    out: str = "predictions",
    params_path: str = "params.yaml",
    chunk_rows: int | None = None,
) -> dict[str, Any]:
    """Score ``data`` with ``model``'s champion; return the metadata written beside the predictions.

    Relative ``data`` and ``out`` are under the params file's folder, as ``mlops run --data`` is.
    Raises NoChampionError (no champion), DataRejectedError (a blocking rule failed: no predictions)
    or DataReadError (the file cannot be read as the contract says).
    """
    from components.config import load_settings
    from components.dataset_settings import default_model_name
    from components.release import registry
    from flows.runtime import prepare_environment, tag_flow_run

    logger = get_run_logger()
    root = Path(params_path).resolve().parent
    prepare_environment(root)
    settings = load_settings(params_path)
    # A Dask LocalCluster's workers start and import the scoring stack while the model and its data load.
    cluster = ScoringCluster(settings.batch.parallel)
    chunk_rows = chunk_rows or settings.batch.chunk_rows
    registry.configure_tracking(root)
    data_path, out_dir = (p if p.is_absolute() else root / p for p in (Path(data), Path(out)))
    timings: dict[str, float] = {}

    try:
        start = time.perf_counter()
        name = model or default_model_name(params_path)
        version = resolve_task(name, settings.promote.alias)
        timings["resolve"] = time.perf_counter() - start
        tag_flow_run(f"model:{name}")
        logger.info("scoring %s with %s v%s (%s)", data_path, name, version.version, version.uri)

        start = time.perf_counter()
        contract, contract_source = contract_task(version, root, settings)
        reference, reference_note = reference_task(version, root, settings, contract)
        if contract is None:
            contract = champion.basic_batch_contract(settings, version.task, reference, data_path)
        timings["contract_and_reference"] = time.perf_counter() - start
        logger.info("contract: %s; drift reference: %s", contract_source, reference_note)

        start = time.perf_counter()
        predict, scorer = load_task(version)
        timings["load_model"] = time.perf_counter() - start

        record = version.record() | scorer
        context = {"contract": {"name": contract.name, "source": contract_source}}
        try:
            meta = score_task(data_path, contract=contract, predict=predict, model=record, out_dir=out_dir,
                              reference=reference, reference_note=reference_note, chunk_rows=chunk_rows,
                              context=context, timings=timings, drift_share=settings.monitor.drift_share,
                              parallel=settings.batch.parallel, cluster=cluster)  # fmt: skip
        except DataRejectedError as err:
            create_markdown_artifact(f"# Batch rejected: {data_path.name}\n\n{err}", key="batch-inference",
                                     description="batch-inference: the batch was rejected, nothing scored")  # fmt: skip
            raise
        finally:
            cluster.close(wait=False)  # stops while the reports are logged; waited for below
        tag_flow_run(f"batch:{str(meta['batch']['md5'])[:12]}")
        publish_drift(meta, version, data_path, settings.monitor.cooldown_hours)
        logger.info("drift: %s", meta["drift"]["verdict"])
        markdown = render_markdown(meta)
        create_markdown_artifact(markdown, key="batch-inference", description="batch-inference run summary")
        logger.info("%d rows scored, %d quarantined -> %s", meta["rows"]["scored"], meta["rows"]["quarantined"],
                    meta["predictions"])  # fmt: skip
        return meta | {"markdown": markdown}
    finally:
        cluster.close()  # `mlops predict` leaves no worker process behind
