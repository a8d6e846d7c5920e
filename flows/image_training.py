"""The `image-training-pipeline` Prefect flow: the training pipeline for a folder of labelled images.

validate (image contract, GX) → split (identical images together; leakage blocks) → train candidates
(search, fit cache and Dask as for tables) → choose on validation → quantize (optional) → assess on
test (per-class slices, image behaviour) → gate → register → package (the image bento) →
infra-validate → promote. Everything after the assessment is the tabular release (flows.release_steps)
with the image steps of flows.image_steps in its Runner; `mlops run` starts this flow when the
params' contract says ``kind: images``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from components.model.quantization import quantize_at_load
from components.release import registry, run_records
from components.release.lineage import git_commit
from components.release.summary import redact_uri, run_summary
from flows import image_steps, quantize_step, release_steps, steps
from flows.child_process import ChildProcess
from flows.completed_run import nothing_changed
from flows.fitting import FitEngine, train_and_choose
from flows.training import _published, log_candidate_task, quantize_task, record_summary, release_tasks

load_task = task(name="scan-images", task_run_name=lambda parameters: f"scan {parameters['ctx'].settings.data.path}")(
    image_steps.load
)


@task(name="validate-images", cache_policy=NO_CACHE,
      task_run_name=lambda parameters: f"validate and split {parameters['ctx'].settings.data.path}")  # fmt: skip
def validate_task(child: ChildProcess, ctx, out_dir):
    """The image contract, the split and the leakage rule, checked in ``child`` (GX stays out of this process)."""
    return child.call(image_steps.load_and_check, ctx, out_dir)


assess_task = task(name="assess-on-test", task_run_name="assess {model.name} on test images")(image_steps.assess)
IMAGE_TASKS = release_tasks(image_steps, reference="no drift reference for images", bento="image bento")


@flow(name="image-training-pipeline")
def image_training_pipeline(
    params_path: str = "params.yaml",
    overrides: list[str] | None = None,
    data_path: str | None = None,
    contract: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Train, evaluate, register, package and (if it earns it) promote one image classifier.

    Skips all work when a finished version already has the same images (DVC's hash), params and code.
    """
    import mlflow

    from flows.runtime import prepare_environment, tag_flow_run

    logger = get_run_logger()
    prepare_environment(Path(params_path).resolve().parent)
    ctx = steps.resolve(params_path, overrides, data_path, contract)
    tracking_uri = registry.configure_tracking(ctx.root, experiment=ctx.name)
    manifest, md5 = load_task(ctx)
    ctx = steps.fingerprinted(ctx, md5)
    tag_flow_run(f"model:{ctx.name}", f"dataset:{md5[:12]}", "images")
    logger.info("image folder %s (DVC md5 %s): %d files", ctx.settings.data.path, md5, len(manifest))
    summary = None if force else nothing_changed(ctx, tracking_uri)
    if summary is not None:
        logger.info(summary.decision)
        return _published(summary)

    engine = FitEngine(ctx.settings.train.parallel)
    registered: list[str] = []
    with (
        ChildProcess(warm=image_steps.VALIDATION_IMPORTS) as validator,
        engine,
        mlflow.start_run(run_name=run_records.parent_run_name(ctx.name, md5, ctx.driver)) as parent,
        run_records.failures_recorded(ctx.name, registered),
    ):
        ctx = replace(ctx, run_id=parent.info.run_id, commit=git_commit(ctx.root))
        mlflow.set_tags(release_steps.run_tags(ctx) | {"data_kind": "images"})
        release_steps.log_run_inputs(ctx)
        try:
            report, split_paths, _, _ = validate_task(validator, ctx, ctx.out_dir)
        finally:
            if (ctx.out_dir / "validation_report.html").exists():
                mlflow.log_artifacts(str(ctx.out_dir), "validation")
        report_uri = f"{mlflow.get_artifact_uri('validation')}/validation_report.html"
        validation = steps.validation_note(report)
        logger.info("validation: %s", validation)

        splits = image_steps.split_frames(ctx, manifest, split_paths)
        outcomes, best, fits = train_and_choose(ctx.settings, ctx.root, splits, logger, force, engine, ctx.task)
        model, quantization, quantize_note = quantize_task(ctx, outcomes[best.candidate].model, splits.test)
        outcomes[best.candidate] = replace(outcomes[best.candidate], model=model)
        quantize_step.record_quantization(quantization)
        example = splits.train.drop(columns=[ctx.target])
        logged = {c: log_candidate_task(ctx.run_id, outcomes[c], example) for c in outcomes}
        mlflow.log_metrics({"fit_phase_seconds": fits.seconds, "fits_trained": fits.fitted, "fits_cached": fits.cached})

        model = quantize_at_load(model)  # what ships: the int8 net when quantization was accepted
        assessment = assess_task(ctx, model, splits.test, ctx.out_dir)
        mlflow.log_metrics({f"test_{k}": x for k, x in assessment.metrics.items()})
        mlflow.log_artifacts(str(ctx.out_dir / "plots"), "plots")
        child_run_id, model_uri = logged[best.candidate]
        _record_slices(child_run_id, assessment.slices)
        released = release_steps.release(ctx, model=model, model_uri=model_uri, child_run_id=child_run_id,
                                         assessment=assessment, frame=splits.train, train=splits.train,
                                         test=splits.test, validation=validation, report_uri=report_uri,
                                         run=IMAGE_TASKS, registered=registered,
                                         quantization=quantization)  # fmt: skip
        logger.info("gate: %s", released.decision.reason)
        n_images = sum(splits.sizes().values())
        summary = run_summary(ctx, released, outcomes=outcomes, chosen=best.candidate, n_rows=n_images,
                              splits=splits.sizes(), validation=f"{validation} (report: {report_uri})",
                              test_metrics=assessment.metrics, tracking_uri=redact_uri(tracking_uri),
                              notes=[n for n in (fits.note(), quantize_note, *released.notes) if n])  # fmt: skip
        record_summary(ctx, summary, released.version)
    logger.info("chosen %s, registered %s v%s, aliases %s", best.candidate, ctx.name, released.version,
                released.aliases)  # fmt: skip
    return _published(summary, released.decision)


def _record_slices(run_id: str, slices: dict[str, dict[str, Any]]) -> None:
    """The per-class slices on the run the version is registered from (``slices.json`` and
    ``test_<metric>.label_<class>`` metrics), so its page shows them with or without a champion to compare."""
    import time

    from mlflow.entities import Metric

    client, now = registry.client(), int(time.time() * 1000)
    client.log_dict(run_id, slices, "slices.json")
    metrics = [Metric(f"test_{m}.{name.replace('=', '_')}", float(row[m]), now, 0)
               for name, row in slices.items() for m in ("recall", "precision", "f1")]  # fmt: skip
    client.log_batch(run_id, metrics=metrics)
