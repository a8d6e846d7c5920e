"""The step bodies an image pipeline has of its own; every other step is the tabular one.

A folder of labelled images becomes a table early: one row per file (``image`` path, ``sha256``,
``label``), so the fits, the search, the fit cache, the Dask engine, registration, the alias
compare-and-set and the run records are the tabular ones. What differs is here: the folder's
version (DVC's directory hash), the image contract and the leakage rule, the split that keeps
identical images together, the per-class slices and image behaviour tests, and the bento that takes an image.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from components.data import dataset
from flows.steps import RunContext

if TYPE_CHECKING:
    import pandas as pd

# What image validation imports: the validation child warms these while the parent starts its run.
VALIDATION_IMPORTS = ("great_expectations", "components.images.validate", "components.images.report")
NO_REFERENCE = "none (the drift of image inputs is not monitored)"


def dvc_file(ctx: RunContext) -> Path:
    """The ``.dvc`` file that tracks the image folder (``dvc add <data.path>`` writes it beside the folder)."""
    return Path(f"{ctx.settings.data.path}.dvc")


def load(ctx: RunContext) -> tuple[pd.DataFrame, str]:
    """The folder's manifest (one row per file) and its version: DVC's directory hash of the folder."""
    from components.images.manifest import scan_images

    return scan_images(ctx.data_path), tracked_md5(ctx)


def tracked_md5(ctx: RunContext) -> str:
    """DVC's hash of the image folder, once the files on disk are checked to be that version: lineage must
    never name a version the model was not trained on."""
    from components.fingerprint import dataset_fingerprint
    from components.images.dvc_hash import DIR_SUFFIX, dataset_dir_md5

    md5 = dataset_dir_md5(ctx.root, dvc_file(ctx))
    if not ctx.data_path.is_dir():
        where = ctx.settings.data.path
        raise dataset.DataNotFoundError(f"image folder {where} not found: `dvc pull` or `dvc checkout` the version "
                                        f"{dvc_file(ctx)} tracks, or run ingest")  # fmt: skip
    on_disk = dataset_fingerprint(ctx.data_path) + DIR_SUFFIX
    if on_disk != md5:
        raise dataset.DataNotFoundError(
            f"the files in {ctx.settings.data.path} (md5 {on_disk}) are not the version {dvc_file(ctx)} tracks "
            f"(md5 {md5}): run `dvc add {ctx.settings.data.path}` to version them, or `dvc checkout` to restore it"
        )
    return md5


def load_and_check(ctx: RunContext, out_dir: Path):
    """Scan, validate (GX over the manifest), split and check the split for leakage: one body for the
    validation child. Returns (report, splits: paths per split, report path, reference note).

    Raises ``DataRejectedError`` naming the rule, the files and the report when a blocking rule fails.
    """
    from components.dataset_settings import check_target_fits
    from components.images.report import write_image_report
    from components.images.split import split_images
    from components.images.validate import validate_images
    from components.validation.report import DataRejectedError
    from components.validation.report_html import report_header

    manifest, md5 = load(ctx)
    if ctx.md5 and md5 != ctx.md5:
        raise RuntimeError(f"{dvc_file(ctx)} changed during the run (md5 {ctx.md5}, now {md5}): run again")
    contract, d = ctx.contract, ctx.settings.data
    checked = validate_images(manifest, contract)
    splits = None
    if checked.report.success:  # the leakage rule checks the split the models will see
        splits = split_images(checked.kept, test_size=d.test_size, val_size=d.val_size, seed=d.seed)
        checked = validate_images(manifest, contract, splits=splits)
    shown = ctx.data_path.relative_to(ctx.root) if ctx.data_path.is_relative_to(ctx.root) else ctx.data_path
    header = report_header(dataset=shown, md5=md5, contract=contract.name,
                           contract_source=ctx.settings.validate_.contract, drift_reference=NO_REFERENCE)  # fmt: skip
    html = write_image_report(checked, ctx.data_path, out_dir, title=f"Validation of {len(manifest)} images",
                              header=header)  # fmt: skip
    if not checked.report.success:
        raise DataRejectedError(checked.report, html)
    check_target_fits(ctx.task, checked.kept["label"], ctx.target, where=f"contract {ctx.settings.validate_.contract}")
    return checked.report, splits, html, NO_REFERENCE


def split_frames(ctx: RunContext, manifest: pd.DataFrame, splits: dict[str, list[str]]) -> dataset.Splits:
    """The image frames of each split: ``image`` (absolute path), ``sha256`` (so a fit's cache key follows
    the bytes, not the file names) and the label, in the split's path order."""
    import pandas as pd

    rows = manifest.set_index("path")

    def frame(paths: list[str]) -> pd.DataFrame:
        part = rows.loc[paths]
        return pd.DataFrame({"image": [str(ctx.data_path / p) for p in paths],
                             "sha256": part["sha256"].astype(str).to_numpy(),
                             ctx.target: part["label"].astype(str).to_numpy()})  # fmt: skip

    return dataset.Splits(frame(splits["train"]), frame(splits["val"]), frame(splits["test"]))


def assess(ctx: RunContext, model: Any, test: pd.DataFrame, out_dir: Path):
    """Metrics, per-class slices, image behaviour tests and plots of ``model`` on the test images."""
    from components.evaluation.assess import TestAssessment
    from components.evaluation.metrics import task_metrics
    from components.evaluation.plots import write_task_plots
    from components.images.behaviour import run_image_behaviour
    from components.images.slices import class_slice_metrics

    ev = ctx.settings.evaluate
    y = model.encode_target(test[ctx.target], what=f"test target '{ctx.target}'")
    images = model.pixels(test)
    proba = model.predict_proba(images)
    scores = proba[:, 1] if model.task == "binary" else proba
    n_classes = len(model.classes) if model.task == "multiclass" else None
    slices = class_slice_metrics(y, proba, model.classes, min_size=ev.slices.min_size)
    behaviour = run_image_behaviour(model, images, ev.behaviour, root=ctx.root)
    files = write_task_plots(model.task, y, scores, threshold=model.threshold, classes=model.classes, slices=slices,
                             out_dir=out_dir / "plots")  # fmt: skip
    metrics = task_metrics(model.task, y, scores, threshold=model.threshold, n_classes=n_classes)
    return TestAssessment(y, scores, metrics, slices, behaviour, files)


def gate(ctx: RunContext, assessment: Any, baseline: np.ndarray, test: pd.DataFrame, champion: str | None,
         champ_proba) -> Any:  # fmt: skip
    """The tabular gate, with the champion's slices per class (images have no feature columns to slice by)."""
    from components.images.slices import class_slice_metrics
    from flows.release_steps import decide_gate

    champion_slices = None
    if champ_proba is not None:
        proba = champ_proba if champ_proba.ndim == 2 else np.column_stack([1 - champ_proba, champ_proba])
        classes = _model_classes(ctx, test, proba.shape[1])
        if classes is not None:
            champion_slices = class_slice_metrics(assessment.y_true, proba, classes,
                                                  min_size=ctx.settings.evaluate.slices.min_size)  # fmt: skip
    return decide_gate(ctx, assessment, baseline, champion, champ_proba, champion_slices)


def _model_classes(ctx: RunContext, test: pd.DataFrame, k: int) -> list[str] | None:
    """The challenger's classes (sorted training labels: the contract's labels when every one has images)."""
    for labels in (ctx.contract.labels, test[ctx.target].astype(str).unique()):
        if len(set(labels)) == k:
            return sorted(set(map(str, labels)))
    return None


def store_reference(ctx: RunContext, model: Any, version: str) -> str:
    """Image versions store no drift reference: batch monitoring of images is not built."""
    return f"reference predictions: {NO_REFERENCE}"


def package(ctx: RunContext, version: str, model: Any, frame: pd.DataFrame, test: pd.DataFrame | None = None) -> str:
    """The image bento of the registered version: ``/predict_image`` and ``/predict_images``."""
    from components.images.bento import build_image_bento
    from components.vocabulary import DECISION_PROMOTE

    metadata = {"model_version": version, "dataset_md5": ctx.md5, "git_commit": ctx.commit, "params_hash": ctx.phash,
                "candidate": model.name, "decision": DECISION_PROMOTE,
                "quantized": str("quantization" in model.fit).lower()}  # fmt: skip
    s = ctx.settings
    return build_image_bento(registered_model=ctx.name, version=version, service_name=s.package.service_name,
                             metadata=metadata, constraints=ctx.root / "constraints.txt", max_batch=s.serve.max_batch,
                             classes=list(model.classes), image=model.image)  # fmt: skip


def infra_validate(ctx: RunContext, bento_tag: str, rows: pd.DataFrame, version: str):
    """Serve the exact image bento and compare its answers, one by one and batched, with the pyfunc's."""
    from components.images.infra import validate_image_bento

    budget = ctx.settings.package.infra_validation.p95_budget_ms
    return validate_image_bento(bento_tag, rows, f"models:/{ctx.name}/{version}", p95_budget_ms=budget)
