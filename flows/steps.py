"""One body per pipeline step, with no Prefect: the flow wraps them as tasks, the DVC stages call them.

A step takes the run's :class:`RunContext` (effective settings, the contract resolved once, hashes)
and plain data, and returns plain data. The release half (gate to promote) is in
``flows.release_steps``. Heavy libraries (Great Expectations, MLflow) are imported inside the steps
that use them: a skipped run or a CLI error never pays for them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components import dataset_settings
from components.config import ConfigError, Settings, load_settings
from components.data import dataset
from components.fingerprint import code_fingerprint, dataset_fingerprint, run_inputs
from components.images.ingest import IMAGE_SOURCES

if TYPE_CHECKING:
    import pandas as pd

    from components.data.contract import Contract
    from components.model.trained import TrainedModel

TRAINING_CODE = [
    "components",
    "flows.training",
    "flows.steps",
    "flows.release_steps",
    "flows.image_training",
    "flows.image_steps",
    "flows.quantize_step",
    "flows.validation_cache",
]


@dataclass(frozen=True)
class RunContext:
    """What every step needs to know about this run, resolved once at its start."""

    settings: Settings
    root: Path
    contract: Contract | None  # None: the basic checks of validate.* only
    out_dir: Path
    driver: str = "prefect"  # or "dvc": which driver ran the steps (a tag on runs and versions)
    md5: str = ""
    phash: str = ""
    code_hash: str = ""
    fingerprint: str = ""
    commit: str = ""
    run_id: str = ""
    task: str = "binary"  # binary | multiclass | regression: the contract's, else guessed from the target

    @property
    def name(self) -> str:
        return str(self.settings.promote.registered_model)

    @property
    def target(self) -> str:
        return self.settings.data.target

    @property
    def data_path(self) -> Path:
        return (self.root / self.settings.data.path).resolve()


def resolve(
    params_path: str | Path,
    overrides: list[str] | None = None,
    data_path: str | None = None,
    contract: str | None = None,
    *,
    driver: str = "prefect",
    out_dir: Path | None = None,
    require_data: bool = True,
) -> RunContext:
    """Effective settings for a run: params, ``--set``, a bring-your-own file and contract.

    The contract is read once here; dataset-specific settings (model name, task, primary metric,
    thresholds, slices, behaviour) come from it where params.yaml leaves them null. A target that does
    not fit the task, or a candidate whose family cannot learn it, is refused before anything runs.
    """
    root = Path(params_path).resolve().parent
    extra = list(overrides or []) + ([f"data.path={data_path}"] if data_path else [])
    given = dataset_settings.load_any_contract(contract) if contract else None
    if given is not None:  # bring-your-own data: the contract names its own target
        extra += [f"validate.contract={Path(contract).resolve()}", f"data.target={given.target}"]
    settings = load_settings(params_path, extra)
    if require_data and not (root / settings.data.path).exists():  # the first thing to say when it is missing
        _missing_data(root / settings.data.path, images=settings.data.source in IMAGE_SOURCES)
    loaded = given or dataset_settings.load_configured_contract(settings, root)
    if require_data and dataset_settings.is_image_contract(loaded) != (root / settings.data.path).is_dir():
        kind = "a folder of images" if dataset_settings.is_image_contract(loaded) else "a table file"
        raise ConfigError(f"data.path: {settings.data.path} is not {kind}, as contract {settings.validate_.contract} "
                          "expects")  # fmt: skip
    if loaded is not None:
        if loaded.target != settings.data.target:
            raise ConfigError(
                f"data.target is '{settings.data.target}' but the contract "
                f"{settings.validate_.contract} declares target '{loaded.target}'"
            )
        task = loaded.task
    else:
        task = guessed_task(settings, root)
    run_dir = out_dir or root / "runs" / f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    resolved = dataset_settings.resolve(settings, loaded, task=task)
    return RunContext(resolved, root, loaded, run_dir, driver=driver, task=task)


def _missing_data(path: Path, *, images: bool) -> None:
    if images:
        raise dataset.DataNotFoundError(f"image folder {path} not found: run `mlops --params <params> ingest`, or "
                                        "`dvc pull` the tracked version")  # fmt: skip
    dataset.load_dataset(path)  # raises DataNotFoundError with the how-to


def is_images(ctx: RunContext) -> bool:
    """Whether the run's data is a folder of images (an image contract), not a table."""
    return dataset_settings.is_image_contract(ctx.contract)


def guessed_task(settings: Settings, root: Path) -> str:
    """With no contract to say it, the task as ``contract infer`` would guess it from the target column."""
    from components.data.contract_inference import guess_task

    path = root / settings.data.path
    if not path.is_file():
        return "binary"  # a stage that never reads the data (DVC's later stages read the contract-less split)
    frame = dataset.load_dataset(path)
    if settings.data.target not in frame.columns:
        return "binary"  # validation names the missing target column
    return guess_task(frame[settings.data.target])[0]


def load(ctx: RunContext) -> tuple[pd.DataFrame, str]:
    """The dataset read as its contract says, and its md5 (the hash DVC records)."""
    from components.data.reading import read_with_contract

    path = ctx.data_path
    if not path.is_file():
        dataset.load_dataset(path)  # raises DataNotFoundError with the how-to
    frame = read_with_contract(path, ctx.contract) if ctx.contract else dataset.load_dataset(path)
    return frame, dataset.file_md5(path)


def fingerprinted(ctx: RunContext, md5: str) -> RunContext:
    """``ctx`` with the one fingerprint of this run's inputs: dataset, the params that shape a version,
    the contract and the code (components.fingerprint, the same for both flows and both drivers)."""
    contract = ctx.settings.validate_.contract
    contract_md5 = dataset_fingerprint(ctx.root / contract) if contract else None
    inputs = run_inputs(md5, ctx.settings.as_params(), contract_md5, code_fingerprint(TRAINING_CODE))
    return replace(ctx, md5=md5, phash=inputs.params_hash, code_hash=inputs.code_hash, fingerprint=inputs.fingerprint)


@dataclass(frozen=True)
class DriftReference:
    """Which data the drift of a run is measured against, found without reading it."""

    data: str  # its identity: the md5 of the champion's dataset, or "training split" of this one
    note: str  # what the report and the summary say
    path: Path | None = None  # the champion's dataset in the DVC cache, when it is another dataset


def drift_reference_source(ctx: RunContext, md5: str) -> DriftReference:
    """The champion's training data (through its dataset md5 and the DVC cache), else our training split."""
    from components.release import registry
    from components.vocabulary import TAG_DATASET_MD5

    champion = registry.alias_version(ctx.name, ctx.settings.promote.alias)
    if champion is not None:
        champion_md5 = registry.client().get_model_version(ctx.name, champion).tags.get(TAG_DATASET_MD5)
        if champion_md5 == md5:
            return DriftReference(md5, f"champion v{champion}'s dataset (md5 {md5}, unchanged)")
        cached = dataset.find_in_dvc_cache(ctx.root, champion_md5 or "")
        if cached is not None:
            note = f"champion v{champion}'s dataset (md5 {champion_md5}, from the DVC cache)"
            return DriftReference(str(champion_md5), note, cached)
        if champion_md5:  # the champion's file was replaced and never went through `dvc add`: say so
            return DriftReference("training split", f"this dataset's training split (champion v{champion}'s dataset, "
                                  f"md5 {champion_md5}, is not in the DVC cache)")  # fmt: skip
    return DriftReference("training split", "this dataset's training split (no champion dataset to compare against)")


def drift_reference(ctx: RunContext, frame: pd.DataFrame, md5: str) -> tuple[pd.DataFrame, str]:
    """The drift reference's data (see :func:`drift_reference_source`) and its note."""
    from components.data.reading import read_dataset

    source = drift_reference_source(ctx, md5)
    if source.data == md5:
        return _labelled(ctx, frame), source.note
    if source.path is not None:
        return _labelled(ctx, read_dataset(source.path, ctx.contract)), source.note
    return split(ctx, _labelled(ctx, frame)).train, source.note


def _labelled(ctx: RunContext, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` without rows whose target is blank. Validation compares the rows it keeps with the reference,
    and a contract quarantines unlabelled rows (``contract infer`` drafts it so): left in the reference, they
    were a target drift of their own (PSI 0.47 on a regression target with 7% blanks)."""
    if ctx.target not in frame.columns or not frame[ctx.target].isna().any():
        return frame
    return frame[frame[ctx.target].notna()]


# What validation imports (Great Expectations): a driver that validates in a child process
# (flows.child_process) warms these up there while it does other work.
VALIDATION_IMPORTS = ("great_expectations", "components.validation.validate")


def _contract(ctx: RunContext, frame: pd.DataFrame):
    from components.validation.validate import basic_contract

    v = ctx.settings.validate_
    return ctx.contract or basic_contract(
        frame, ctx.target, min_rows=v.min_rows, max_null_fraction=v.max_null_fraction, task=ctx.task
    )


def check(ctx: RunContext, frame: pd.DataFrame, reference: pd.DataFrame | None, out_dir: Path,
          reference_note: str = ""):  # fmt: skip
    """Contract checks (drift against ``reference`` too); returns (report, index of the kept rows, report
    path, the contract checked: ``ctx.contract`` or the basic one drafted from ``frame``).

    Only the index crosses back from a child process: the parent selects the rows itself
    (:func:`accepted_frame`), so it never holds a second, pickled copy of the data.
    Raises ``DataRejectedError`` naming the rule and the report when a blocking rule fails.
    """
    from components.dataset_settings import check_target_fits
    from components.validation.report import DataRejectedError
    from components.validation.report_html import report_header, write_report
    from components.validation.validate import validate_frame

    contract = _contract(ctx, frame)
    report, accepted = validate_frame(frame, contract, reference=reference, quarantine_path=out_dir / "quarantine.csv")
    shown = ctx.data_path.relative_to(ctx.root) if ctx.data_path.is_relative_to(ctx.root) else ctx.data_path
    header = report_header(dataset=shown, md5=ctx.md5 or None, contract=contract.name,
                           contract_source=ctx.settings.validate_.contract or "basic checks (validate.*)",
                           drift_reference=reference_note or ("none" if reference is None else None))  # fmt: skip
    html = write_report(report, out_dir, title=f"Validation of {len(frame)} rows", header=header)
    if not report.success:
        raise DataRejectedError(report, html)
    where = f"contract {ctx.settings.validate_.contract}" if ctx.contract else "data"
    check_target_fits(ctx.task, accepted[ctx.target], ctx.target, where=where)
    return report, accepted.index, html, contract


def load_and_check(ctx: RunContext, out_dir: Path):
    """:func:`load`, :func:`drift_reference` and :func:`check` as one body for a child process: the data
    and the reference are read where they are checked, so neither is pickled across (a 500k-row frame
    pickles to hundreds of MiB). Returns :func:`check`'s answer and the reference note.
    """
    from components.release import registry

    registry.configure_tracking(ctx.root)
    frame, md5 = load(ctx)
    if ctx.md5 and md5 != ctx.md5:
        raise RuntimeError(f"{ctx.data_path} changed during the run (md5 {ctx.md5}, now {md5}): run again")
    reference, note = drift_reference(ctx, frame, md5)
    return (*check(ctx, frame, reference, out_dir, note), note)


def accepted_frame(frame: pd.DataFrame, kept: pd.Index, contract) -> pd.DataFrame:
    """The frame models see: the ``kept`` rows (quarantine drops only rows), their features and target."""
    from components.data.reading import model_frame

    return model_frame(frame if len(kept) == len(frame) else frame.loc[kept], contract)


def validate(ctx: RunContext, frame: pd.DataFrame, reference: pd.DataFrame | None, out_dir: Path,
             reference_note: str = ""):  # fmt: skip
    """:func:`check`, then :func:`accepted_frame`: (report, the frame models see, report path)."""
    report, kept, html, contract = check(ctx, frame, reference, out_dir, reference_note)
    return report, accepted_frame(frame, kept, contract), html


def split(ctx: RunContext, frame: pd.DataFrame) -> dataset.Splits:
    d = ctx.settings.data
    return dataset.split(frame, d.target, d.test_size, d.val_size, d.seed, task=ctx.task)


def assess(ctx: RunContext, model: TrainedModel, test: pd.DataFrame, out_dir: Path):
    """Metrics, slices, behaviour tests and plots of the chosen model on the held-out split."""
    from components.evaluation.assess import assess_on_test

    ev = ctx.settings.evaluate
    return assess_on_test(
        model,
        test,
        ctx.target,
        slice_columns=ev.slices.columns,
        min_slice_size=ev.slices.min_size,
        bins=ev.slices.bins,
        behaviour_specs=ev.behaviour,
        out_dir=out_dir,
    )


def validation_note(report: Any) -> str:
    n = len(report.warnings())
    return "passed" + (f" with {n} warning{'s' if n > 1 else ''}" if n else "")
