"""The `training-pipeline` Prefect flow: a recipe of tasks over the step bodies in flows.steps and
flows.release_steps (the DVC stages call the same bodies).

validate → split → train candidates → choose on validation → assess on test → gate (thresholds or
the no-feature baseline, behaviour, champion, slices) → register → package → infra-validate → promote.
What Prefect adds: named tasks, retries on I/O, the per-fit cache (flows.fitting), artifacts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from components.model.quantization import quantize_at_load
from components.release import registry, run_records
from components.release.lineage import git_commit
from components.release.summary import (
    redact_uri,
    render_decision_markdown,
    render_markdown,
    run_summary,
)
from flows import candidate_runs, early_validation, quantize_step, release_steps, steps, validation_cache
from flows.child_process import ChildProcess
from flows.completed_run import nothing_changed
from flows.fitting import FitEngine, train_and_choose

IO_RETRIES = {"retries": 3, "retry_delay_seconds": [2, 5, 15]}


def _dataset_file(parameters: dict[str, Any]) -> str:
    return parameters["ctx"].data_path.name


# Task runs are named by what they do (``validate dataset.parquet``, ``log logreg``, ``register <model>``):
# that is what the Prefect UI lists. Fits are named in flows.fitting.
load_task = task(name="load-dataset", task_run_name=lambda parameters: f"load {_dataset_file(parameters)}")(steps.load)


@task(name="validate-dataset", cache_policy=NO_CACHE,
      task_run_name=lambda parameters: f"validate {_dataset_file(parameters)}")  # fmt: skip
def validate_task(check: Callable[..., Any], ctx, frame, out_dir):
    """The data checked against the contract and drift reference by ``check``: ``steps.load_and_check`` in
    a child process (the process that trains next never holds GX, the reference or a copy of the data),
    or the answer of the one `mlops run` started ahead; returns (report, the frame models see, report
    path, reference note)."""
    report, kept, html, contract, reference_note = check(ctx, out_dir)
    validation_cache.store(ctx, report, kept, len(frame), reference_note)
    return report, steps.accepted_frame(frame, kept, contract), html, reference_note


assess_task = task(name="assess-on-test", task_run_name="assess {model.name} on test")(steps.assess)
quantize_task = task(name="quantize", task_run_name="quantize {model.name}")(quantize_step.quantized)
log_candidate_task = task(name="log-candidate", task_run_name="log {outcome.model.name}",
                          **IO_RETRIES)(candidate_runs.log_candidate)  # fmt: skip


def release_tasks(step, *, reference: str, bento: str) -> release_steps.Runner:
    """The release steps as named Prefect tasks; ``step`` holds the bodies that differ by kind of data
    (gate, store_reference, package, infra_validate: flows.release_steps or flows.image_steps)."""
    return release_steps.Runner(
        champion_scores=task(name="champion-on-test", task_run_name="score champion on test", **IO_RETRIES)(
            release_steps.champion_scores
        ),
        gate=task(name="gate", task_run_name="gate")(step.gate),
        register=task(name="register-model", task_run_name="register {name}", **IO_RETRIES)(registry.register),
        store_reference=task(name="reference-predictions", task_run_name=reference)(step.store_reference),
        package=task(name="build-bento", task_run_name=f"build {bento} {{ctx.name}} v{{version}}", **IO_RETRIES)(
            step.package
        ),
        infra_validate=task(name="infra-validation", task_run_name="infra-validate {bento_tag}")(step.infra_validate),
        promote=task(name="promote", task_run_name="promote {ctx.name} v{version}", **IO_RETRIES)(
            release_steps.promote
        ),
    )


TASKS = release_tasks(release_steps, reference="score the drift reference with v{version}", bento="bento")


def record_summary(ctx, summary, version: str) -> None:
    """The run's summary on its MLflow parent run: ``summary.md``, ``summary.json`` and the run's description."""
    import mlflow

    markdown = render_markdown(summary)
    mlflow.log_text(markdown, "summary.md")
    link = f"Registered {run_records.version_link(ctx.name, version)}.\n\n"
    mlflow.set_tag(run_records.DESCRIPTION, link + markdown)  # the run page shows the summary as its description
    mlflow.log_dict(summary.to_dict(), "summary.json")


def _published(summary, decision=None) -> dict[str, Any]:
    """The summary as a Prefect artifact (and the decision beside it), returned as plain data."""
    markdown = render_markdown(summary)
    create_markdown_artifact(markdown, key="training-summary", description="training-pipeline run summary")
    if decision is not None:  # the JSON is promotion_decision.json on the MLflow run
        create_markdown_artifact(render_decision_markdown(decision), key="promotion-decision",
                                 description="PromotionDecision of this run")  # fmt: skip
    return json.loads(json.dumps(summary.to_dict(), default=str)) | {"markdown": markdown}


@flow(name="training-pipeline")
def training_pipeline(
    params_path: str = "params.yaml",
    overrides: list[str] | None = None,
    data_path: str | None = None,
    contract: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Train, evaluate, register, package and (if it earns it) promote one model.

    Skips all work when a finished version already has the same data, params and code, unless ``force``.
    """
    import mlflow

    from flows.runtime import prepare_environment, tag_flow_run

    logger = get_run_logger()
    prepare_environment(Path(params_path).resolve().parent)
    ctx = steps.resolve(params_path, overrides, data_path, contract)
    tracking_uri = registry.configure_tracking(ctx.root, experiment=ctx.name)  # one experiment per model
    frame, md5 = load_task(ctx)
    ctx = steps.fingerprinted(ctx, md5)
    tag_flow_run(f"model:{ctx.name}", f"dataset:{md5[:12]}")
    logger.info("dataset %s md5 %s: %d rows", ctx.settings.data.path, md5, len(frame))
    summary = None if force else nothing_changed(ctx, tracking_uri)
    if summary is not None:
        logger.info(summary.decision)
        return _published(summary)

    engine = FitEngine(ctx.settings.train.parallel)  # a local Dask cluster warms up while the data is validated
    registered: list[str] = []
    reused = None if force else validation_cache.lookup(ctx)  # a passed validation of these exact inputs
    ahead = None if reused is not None else early_validation.take(ctx)  # started by `mlops run`, same inputs
    if ahead is not None:
        ctx = replace(ctx, out_dir=ahead.out_dir)  # the run folder its report is written to
    validator = nullcontext() if reused else ahead.child if ahead else ChildProcess(warm=steps.VALIDATION_IMPORTS)
    with (
        validator,
        engine,
        mlflow.start_run(run_name=run_records.parent_run_name(ctx.name, md5, ctx.driver)) as parent,
        run_records.failures_recorded(ctx.name, registered),
    ):
        ctx = replace(ctx, run_id=parent.info.run_id, commit=git_commit(ctx.root))
        mlflow.set_tags(release_steps.run_tags(ctx))
        release_steps.log_run_inputs(ctx)
        try:
            if reused is None:
                check = ahead.result if ahead else partial(validator.call, steps.load_and_check)
                report, frame, _, reference_note = validate_task(check, ctx, frame, ctx.out_dir)
            else:
                report, reference_note = reused.report, reused.reference_note
                frame = steps.accepted_frame(frame, frame.index if reused.kept is None else reused.kept, ctx.contract)
        finally:
            if (ctx.out_dir / "validation_report.html").exists():
                mlflow.log_artifacts(str(ctx.out_dir), "validation")
        report_uri = f"{mlflow.get_artifact_uri('validation')}/validation_report.html"
        logger.info("validation: %s; drift reference: %s", steps.validation_note(report), reference_note)

        splits = steps.split(ctx, frame)
        outcomes, best, fits = train_and_choose(ctx.settings, ctx.root, splits, logger, force, engine, ctx.task)
        model, quantization, quantize_note = quantize_task(ctx, outcomes[best.candidate].model, splits.test)
        outcomes[best.candidate] = replace(outcomes[best.candidate], model=model)
        quantize_step.record_quantization(quantization)
        example = splits.train.drop(columns=[ctx.target])
        logged = {c: log_candidate_task(ctx.run_id, outcomes[c], example) for c in outcomes}
        model = quantize_at_load(model)  # what ships: the int8 net when quantization was accepted
        mlflow.log_metrics({"fit_phase_seconds": fits.seconds, "fits_trained": fits.fitted, "fits_cached": fits.cached})

        assessment = assess_task(ctx, model, splits.test, ctx.out_dir)
        mlflow.log_metrics({f"test_{k}": x for k, x in assessment.metrics.items()})
        mlflow.log_artifacts(str(ctx.out_dir / "plots"), "plots")
        child_run_id, model_uri = logged[best.candidate]
        released = release_steps.release(ctx, model=model, model_uri=model_uri, child_run_id=child_run_id,
                                         assessment=assessment, frame=frame, train=splits.train, test=splits.test,
                                         validation=steps.validation_note(report), report_uri=report_uri,
                                         run=TASKS, registered=registered, quantization=quantization)  # fmt: skip
        logger.info("gate: %s", released.decision.reason)
        summary = run_summary(ctx, released, outcomes=outcomes, chosen=best.candidate, n_rows=len(frame),
                              splits=splits.sizes(), validation=f"{steps.validation_note(report)}; drift vs "
                              f"{reference_note} (report: {report_uri})", test_metrics=assessment.metrics,
                              tracking_uri=redact_uri(tracking_uri),
                              notes=[n for n in (fits.note(), reused and reused.note(), quantize_note,
                                                 *released.notes) if n])  # fmt: skip
        record_summary(ctx, summary, released.version)
    logger.info("chosen %s, registered %s v%s, aliases %s", best.candidate, ctx.name, released.version,
                released.aliases)  # fmt: skip
    return _published(summary, released.decision)
