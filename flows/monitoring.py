"""The `monitor` Prefect flow: what happened after the release, from late labels or served traffic.

- ``labels``: join a labels file to the predictions `mlops predict` wrote → realized metrics per
  scoring version → compare with the version's test metrics → a drop of its primary metric over
  ``monitor.max_metric_drop`` raises the `mlops.model.drift` alarm (kind ``metric``) → the
  labelled rows are kept for retraining (``monitoring/labelled/<batch md5>.parquet``).
- ``served``: the champion's recorded traffic against its training data → a drift report under
  ``monitoring/served/`` (and on the version's run in MLflow) → an alarm (kind ``served``) when
  the share of drifted columns is over ``monitor.drift_share``.

The work is in ``components.monitoring``; Prefect adds tasks, retries on registry I/O and a
markdown artifact. ``mlops monitor`` runs this flow.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from components import vocabulary as v
from components.config import ConfigError, Settings
from components.inference import champion as ch
from components.monitoring import alarms
from components.monitoring import labels as lb

IO_RETRIES: dict[str, Any] = {"retries": 3, "retry_delay_seconds": [2, 5, 15]}
SERVED_REPORTS = Path("monitoring") / "served"


def version_expectations(name: str, version: str, task_name: str) -> dict[str, Any]:
    """The version's test metrics (``test_<metric>`` of its run), threshold and primary metric."""
    from components.release import registry

    client = registry.client()
    mv = client.get_model_version(name, version)
    logged = client.get_run(mv.run_id).data.metrics if mv.run_id else {}
    expected = {k.removeprefix("test_"): float(x) for k, x in logged.items() if k.startswith("test_")}
    primary = mv.tags.get(v.TAG_PRIMARY_METRIC) or v.DEFAULT_PRIMARY_METRIC[task_name]
    return {"expected": expected, "threshold": expected.pop("threshold", 0.5), "primary": primary}


expectations_task = task(name="version-test-metrics", **IO_RETRIES)(version_expectations)
alarm_task = task(name="raise-alarm", **IO_RETRIES)(alarms.raise_alarm)


def _contract_of(record: dict[str, Any], root: Path, settings: Settings):
    """The contract the scoring version was trained with (None: basic checks), for the target's name
    and for reading the batch back as scoring read it."""
    fields = ch.Champion.__dataclass_fields__
    version = ch.Champion(**{k: record.get(k) for k in fields} | {"alias": record.get("alias") or ""})
    try:
        return ch.version_contract(version, root, settings)[0]
    except ConfigError:  # the contract file is gone: the params' target name still joins the labels
        return None


def check_labels(name: str, labels_path: Path, folder: Path, root: Path, settings: Settings) -> dict[str, Any]:
    """Join, measure, compare, alarm and keep the labelled rows; the result the CLI prints."""
    from components.inference.batch import read_chunks

    logger = get_run_logger()
    result: dict[str, Any] = {"kind": "labels", "model": name, "labels": str(labels_path), "predictions": str(folder),
                              "versions": [], "labelled": []}  # fmt: skip
    files = lb.scorings(folder, name)
    if not files:
        return result | {"status": "nothing", "message": f"no predictions of {name} in {folder}: run `mlops predict`"}
    contract = _contract_of(files[-1][1]["model"], root, settings)
    target = contract.target if contract is not None else settings.data.target
    labels = lb.read_labels(labels_path, target)
    predictions, sizes = lb.read_predictions(files, set(labels["inference_id"]))
    join = lb.join_labels(labels, predictions, sizes)
    result["counts"] = {"labels": join.n_labels, "matched": join.n_matched, "missing": join.missing,
                        "extra": join.extra, "repeated": join.repeated, "duplicate_labels": join.duplicate_labels,
                        "missing_examples": join.missing_examples}  # fmt: skip
    if join.n_matched == 0:
        return result | {"status": "nothing", "message": f"no labelled inference_id of {labels_path.name} is among "
                         f"the {sum(sizes.values())} predictions of {name} in {folder}"}  # fmt: skip
    records = {str(meta["model"]["version"]): meta["model"] for _, meta in files}  # the newest record per version
    for version, rows in join.joined.groupby("model_version", sort=True):
        record = records.get(str(version), files[-1][1]["model"])
        task_name, classes = record["task"], list(record.get("classes") or [])
        known = expectations_task(name, str(version), task_name)
        realized = lb.realized_metrics(rows, task_name, classes, known["threshold"])
        metrics = [{"metric": m, "realized": x, "test": known["expected"].get(m),
                    "drop": None if m not in known["expected"] else alarms.metric_drop(m, x, known["expected"][m])}
                   for m, x in realized["metrics"].items()]  # fmt: skip
        primary = known["primary"]
        reason, limit = None, settings.monitor.max_metric_drop
        if primary in realized["metrics"] and primary in known["expected"]:  # the metric the gate judged it by
            reason = alarms.metric_alarm({primary: realized["metrics"][primary]},
                                         {primary: known["expected"][primary]}, limit)  # fmt: skip
        batches = sorted(set(rows["batch_path"].astype(str)))
        entry = {"version": str(version), "task": task_name, "n": realized["n"], "note": realized["note"],
                 "unknown_labels": realized["unknown_labels"], "primary_metric": primary, "metrics": metrics,
                 "batches": batches, "alarm": reason, "raised": None}  # fmt: skip
        if reason:
            statistics = {"metric": primary, "realized": realized["metrics"][primary], "n_labels": realized["n"],
                          "test": known["expected"][primary], "max_metric_drop": settings.monitor.max_metric_drop,
                          "batch_md5": sorted(set(rows["batch_md5"].astype(str)))}  # fmt: skip
            entry["raised"] = alarm_task(name, str(version), ",".join(batches), "metric", reason, statistics,
                                         cooldown_hours=settings.monitor.cooldown_hours)  # fmt: skip
            logger.warning("metric alarm on %s v%s: %s", name, version, reason)
        result["versions"].append(entry)
    reader = partial(read_chunks, contract=contract, chunk_rows=settings.batch.chunk_rows) if contract else None
    for md5, rows in lb.labelled_rows(join, target, reader).items():
        result["labelled"].append({"batch_md5": md5, "rows": len(rows), "path": str(lb.save_labelled(root, md5, rows))})
    return result | {"status": "ok"}


def check_served(name: str, root: Path, settings: Settings, since: datetime | None) -> dict[str, Any]:
    """The champion's recorded traffic against its training data: a drift report, and an alarm over the share."""
    from components.monitoring import batch_monitor, report_logging
    from components.monitoring.drift_report import build_drift_report, drift_markdown, write_drift_report
    from components.monitoring.drift_stats import CATEGORICAL, NUMERIC
    from components.monitoring.reference_scores import reference_predictions
    from components.monitoring.served import read_served, served_sink

    result: dict[str, Any] = {"kind": "served", "model": name}
    version = ch.resolve_champion(name, settings.promote.alias)
    sink = served_sink(root, name)
    try:
        inputs, served_predictions = read_served(sink, since, version=version.version)
    except FileNotFoundError as err:
        return result | {"status": "nothing", "message": str(err)}
    if inputs.empty:
        return result | {"status": "nothing", "message": f"{sink}: no request of v{version.version} recorded"
                         + (f" since {since.isoformat()}" if since else "")}  # fmt: skip
    contract, _ = ch.version_contract(version, root, settings)
    reference, note = ch.training_reference(version, root, settings, contract)
    if reference is None:
        return result | {"status": "nothing", "message": f"no reference to compare with: {note}"}
    if contract is None:
        contract = ch.basic_batch_contract(settings, version.task, reference, Path("."))
    predict, _ = ch.load_scorer(version)
    ref_rows, ref_pred, pred_note = reference_predictions(reference, predict, contract.target, version.task,
                                                          model_run_id=version.model_run_id)  # fmt: skip
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    context = {"model": name, "version": version.version, "model_uri": version.uri, "served": str(sink),
               "since": since.isoformat() if since else "the first record", "rows_served": len(inputs),
               "reference": note, "created": stamp} | ({"prediction_note": pred_note} if pred_note else {})  # fmt: skip
    kind = NUMERIC if version.task == "regression" else CATEGORICAL
    report = build_drift_report(ref_rows, inputs, batch_monitor.drift_columns(contract), reference_predictions=ref_pred,
                                current_predictions=served_predictions if ref_pred is not None else None,
                                drift_share=settings.monitor.drift_share, context=context,
                                prediction_kind=kind)  # fmt: skip
    stem = f"{sink.name}-v{version.version}-{stamp}"
    html, json_path = write_drift_report(report, root / SERVED_REPORTS, stem)
    if version.model_run_id:
        report_logging.log_drift_report(name, version.version, version.model_run_id, [html, json_path], stem,
                                        report["share_drifted"])  # fmt: skip
    create_markdown_artifact(drift_markdown(report, f"Served traffic of {name} v{version.version}"),
                             key="served-drift-report", description="served traffic vs training data")  # fmt: skip
    raised = alarms.alarm_on_drift(report, name=name, version=version.version, batch=f"served:{sink}",
                                   cooldown_hours=settings.monitor.cooldown_hours, kind="served")  # fmt: skip
    return result | {"status": "ok", "version": version.version, "verdict": report["verdict"], "rows": len(inputs),
                     "report": {"html": str(html), "json": str(json_path)}, "alarm": alarms.drift_alarm(report),
                     "raised": raised}  # fmt: skip


def render_markdown(r: dict[str, Any]) -> str:
    """The run's summary (the CLI prints the same facts as a table)."""
    if r["status"] != "ok":
        return f"# Monitoring {r['model']} ({r['kind']}): nothing to check\n\n{r['message']}\n"
    if r["kind"] == "served":
        return (f"# Served traffic of {r['model']} v{r['version']}\n\n- {r['verdict']}\n- report: {r['report']['html']}"
                f"\n- alarm: {r['alarm'] or 'none'}\n")  # fmt: skip
    c = r["counts"]
    lines = [f"# Late labels for {r['model']}: {Path(r['labels']).name}", "",
             f"- {c['labels']} labelled ids, {c['matched']} joined, {c['missing']} without a prediction, "
             f"{c['extra']} predictions without a label, {c['repeated']} joined the newest of several scorings",
             ""]  # fmt: skip
    for e in r["versions"]:
        lines += [f"## v{e['version']} ({e['task']}, {e['n']} rows)", "", "| metric | realized | test | drop |",
                  "|---|---|---|---|"]  # fmt: skip
        for m in e["metrics"]:
            test, drop, relative = m["test"], m["drop"], m["metric"] in alarms.RELATIVE_DROP
            lines.append(f"| {m['metric']}{' (primary)' if m['metric'] == e['primary_metric'] else ''} | "
                         f"{m['realized']:.4f} | {'-' if test is None else f'{test:.4f}'} | "
                         f"{'-' if drop is None else f'{drop:.1%}' if relative else f'{drop:.4f}'} |")  # fmt: skip
        lines += ["", f"**alarm:** {e['alarm'] or 'none'}", ""]
    return "\n".join(lines)


@flow(name="monitor")
def monitor(
    labels: str | None = None,
    served: bool = False,
    model: str | None = None,
    predictions: str = "predictions",
    params_path: str = "params.yaml",
    since: str | None = None,
) -> dict[str, Any]:
    """Check late ``labels`` (a CSV/Parquet file) against ``predictions``, or the ``served`` traffic since
    ``since`` (ISO time); relative paths are under the params file's folder."""
    from components.config import load_settings
    from components.dataset_settings import default_model_name
    from components.release import registry
    from flows.runtime import prepare_environment

    if bool(labels) == bool(served):
        raise ValueError("monitor: give either labels (a file) or served=True")
    root = Path(params_path).resolve().parent
    prepare_environment(root)
    settings = load_settings(params_path)
    registry.configure_tracking(root)
    name = model or default_model_name(params_path)
    if labels:
        labels_path, folder = (p if p.is_absolute() else root / p for p in (Path(labels), Path(predictions)))
        result = check_labels(name, labels_path, folder, root, settings)
    else:
        result = check_served(name, root, settings, datetime.fromisoformat(since) if since else None)
    result["markdown"] = render_markdown(result)
    create_markdown_artifact(result["markdown"], key=f"monitor-{result['kind']}", description="monitoring summary")
    return result
