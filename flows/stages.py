"""`python -m flows.stages <stage>`: the DVC driver, one command per stage in dvc.yaml.

Each command runs the step bodies the `training-pipeline` flow runs (flows.steps,
flows.release_steps), in the same order, with files under ``runs/dvc/`` between
stages instead of objects in memory. Outputs are byte-stable for equal inputs (sorted-key JSON, seeded training,
no timestamps or absolute paths), so ``dvc.lock`` reproduces on a fresh clone.

    ingest    the tracked data file read with the contract -> normalised copy + md5
    validate  contract checks; quarantined rows removed; report
    split     seeded train/val/test split
    train     one candidate (``train <name>``): model dir + validation metrics
    evaluate  choose the best on validation, assess it on test: metrics, plots
    release   gate vs champion, register, package, infra-validate, promote (run on purpose)
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components import vocabulary as v
from flows import steps
from flows.runtime import EXIT_CONFIG, EXIT_NO_DATA, EXIT_REJECTED  # noqa: F401  (shared exit codes)
from flows.steps import RunContext

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("flows.stages")

EXIT_STALE = 5  # outputs older than their inputs: run `dvc repro` first


class StaleOutputsError(RuntimeError):
    """The outputs under runs/dvc are not what dvc.yaml, params and data give now."""


def read(ctx: RunContext, *parts: str) -> pd.DataFrame:
    """A stage output under the out dir (``runs/dvc``) as a frame."""
    import pandas as pd

    return pd.read_parquet(ctx.out_dir.joinpath(*parts))


def write_json(path: Path, data: Any) -> Path:
    """Byte-stable JSON: sorted keys, fixed indent, numpy scalars as plain numbers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, sort_keys=True, default=lambda v: v.item() if hasattr(v, "item") else str(v))
    path.write_text(text + "\n", encoding="utf-8")
    return path


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# --- stages -------------------------------------------------------------------------


def ingest(ctx: RunContext) -> None:
    """Read the DVC-tracked dataset as the flow does; write it normalised, with its md5."""
    from components.data.dataset import write_parquet

    frame, md5 = steps.load(ctx)
    write_parquet(frame, ctx.out_dir / "ingest" / "dataset.parquet")
    info = {"path": ctx.settings.data.path, "md5": md5, "rows": len(frame), "columns": list(frame.columns)}
    write_json(ctx.out_dir / "ingest" / "dataset.json", info)
    log.info("ingest: %s md5 %s, %d rows", ctx.settings.data.path, md5, len(frame))


def validate(ctx: RunContext) -> None:
    """Contract checks and drift, as the flow runs them; the accepted rows go on, the report is kept either way."""
    from components.data.dataset import write_parquet
    from components.release import registry
    from components.validation.report import DataRejectedError

    frame, md5 = read(ctx, "ingest", "dataset.parquet"), read_json(ctx.out_dir / "ingest" / "dataset.json")["md5"]
    registry.configure_tracking(ctx.root)  # the drift reference is the champion's dataset
    reference, note = steps.drift_reference(ctx, frame, md5)
    log.info("drift reference: %s", note)
    try:
        report_dir = ctx.out_dir / "validate" / "report"
        report, accepted, _ = steps.validate(replace(ctx, md5=md5), frame, reference, report_dir, note)
    except DataRejectedError as err:  # DVC keeps the metrics of a rejected file too
        _validation_metrics(ctx, err.report, note)
        raise
    _validation_metrics(ctx, report, note)
    write_parquet(accepted, ctx.out_dir / "validate" / "accepted.parquet")


def _validation_metrics(ctx: RunContext, report: Any, reference_note: str) -> None:
    write_json(ctx.out_dir / "metrics" / "validation.json",
               {"rows": report.n_rows, "quarantined": report.n_quarantined, "passed": report.success,
                "quarantine_fraction": report.quarantine_fraction, "warnings": len(report.warnings()),
                "validation": steps.validation_note(report), "drift_reference": reference_note})  # fmt: skip


def split(ctx: RunContext) -> None:
    from components.data.dataset import write_parquet

    splits = steps.split(ctx, read(ctx, "validate", "accepted.parquet"))
    for part, frame in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        write_parquet(frame, ctx.out_dir / "split" / f"{part}.parquet")
    log.info("split %s", splits.sizes())


def train(ctx: RunContext, name: str) -> None:
    """Fit (or search) one candidate on train, scored on val: its model dir and val metrics.

    Same call as the Prefect flow (``choose_candidate``), fits one after another.
    """
    from components.config import ConfigError
    from components.model.files import save_model
    from components.training.search import choose_candidate, fit_and_score

    settings = ctx.settings
    spec = settings.train.candidates.get(name)
    if spec is None:
        raise ConfigError(f"no candidate '{name}' in train.candidates (known: {', '.join(settings.train.candidates)})")
    model_dir, metrics = ctx.out_dir / "models" / name, ctx.out_dir / "metrics" / "val" / f"{name}.json"
    shutil.rmtree(model_dir, ignore_errors=True)  # DVC does this too; direct runs must not keep old files
    if not spec.enabled:  # DVC still needs the outputs; evaluate skips disabled candidates
        write_json(model_dir / "disabled.json", {"candidate": name, "enabled": False})
        write_json(metrics, {})
        return
    ev, search = settings.evaluate, settings.train.search
    train_frame, val_frame = read(ctx, "split", "train.parquet"), read(ctx, "split", "val.parquet")

    def fit_batch(specs: list[dict]) -> list:
        outcomes = []
        for one in specs:
            try:
                outcomes.append(fit_and_score(name, one, train_frame, val_frame, settings.data.target,
                                              seed=settings.train.seed, threshold=ev.decision_threshold,
                                              primary_metric=ev.primary_metric, task=ctx.task))  # fmt: skip
            except Exception as err:  # a failed search trial; a plain fit re-raises it
                outcomes.append(err)
        return outcomes

    outcome = choose_candidate(name, spec.as_spec(), n_trials=search.n_trials, batch_size=search.batch_size,
                               seed=search.seed, primary_metric=ev.primary_metric, fit_batch=fit_batch)  # fmt: skip
    save_model(outcome.model, model_dir)  # byte-stable: equal models give equal files
    if outcome.search is not None:
        write_json(model_dir / "search.json", outcome.search.to_dict())
    write_json(metrics, outcome.result.metrics)
    log.info("candidate %s: val %s", name, outcome.result.metrics)


def evaluate(ctx: RunContext) -> None:
    """Choose the best enabled candidate on val (params order breaks ties), assess it on test."""
    from components.evaluation.metrics import EvalResult, choose_best
    from components.model.files import load_model

    ev, n_val = ctx.settings.evaluate, len(read(ctx, "split", "val.parquet"))
    results = [EvalResult(name, "val", n_val, read_json(ctx.out_dir / "metrics" / "val" / f"{name}.json"))
               for name in ctx.settings.train.enabled()]  # fmt: skip
    best = choose_best(results, ev.primary_metric)
    shutil.rmtree(ctx.out_dir / "evaluate" / "plots", ignore_errors=True)
    model, test = load_model(ctx.out_dir / "models" / best.candidate), read(ctx, "split", "test.parquet")
    assessment = steps.assess(ctx, model, test, ctx.out_dir / "evaluate")
    write_json(ctx.out_dir / "metrics" / "test.json", assessment.metrics)
    result = {"chosen": best.candidate, "primary_metric": ev.primary_metric,
              "candidates": {r.candidate: r.metrics for r in results}, "test_metrics": assessment.metrics,
              "slices": assessment.slices,
              "behaviour": [b.to_dict() for b in assessment.behaviour]}  # fmt: skip
    write_json(ctx.out_dir / "evaluate" / "result.json", result)
    log.info("chosen %s: test %s", best.candidate, assessment.metrics)


def check_up_to_date(root: Path, stage: str = "evaluate") -> None:
    """Refuse to release outputs that ``dvc repro`` would change (stale or edited by hand)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        stale = repo.status(targets=[stage], with_deps=True)
    if stale:
        raise StaleOutputsError(f"{', '.join(stale)} not up to date: run `dvc repro` first")


def release(ctx: RunContext) -> None:
    """Gate the evaluated model against the champion, register, package, infra-validate and promote it.

    The same tail as the Prefect flow (``release_steps.release`` with plain steps instead of tasks), so
    both drivers gate, tag, validate the bento and promote alike. Only the chosen candidate's model is
    logged; the others get a child run with their val metrics.
    """
    if (ctx.root / "dvc.yaml").is_file():
        check_up_to_date(ctx.root)
    import tempfile

    import mlflow

    from components.evaluation.metrics import EvalResult
    from components.model.files import load_model
    from components.model.quantization import quantize_at_load
    from components.release import registry, run_records
    from components.release.lineage import git_commit
    from components.training.search import CandidateOutcome
    from flows import candidate_runs, quantize_step, release_steps
    from flows.runtime import prepare_environment

    prepare_environment(ctx.root)
    result = read_json(ctx.out_dir / "evaluate" / "result.json")
    ctx = steps.fingerprinted(ctx, read_json(ctx.out_dir / "ingest" / "dataset.json")["md5"])
    accepted, train_frame = read(ctx, "validate", "accepted.parquet"), read(ctx, "split", "train.parquet")
    test = read(ctx, "split", "test.parquet")
    validation = read_json(ctx.out_dir / "metrics" / "validation.json")["validation"]
    model = load_model(ctx.out_dir / "models" / result["chosen"])
    registry.configure_tracking(ctx.root, experiment=ctx.name)  # one experiment per model
    registered: list[str] = []
    name = run_records.parent_run_name(ctx.name, ctx.md5, ctx.driver)
    with mlflow.start_run(run_name=name) as parent, run_records.failures_recorded(ctx.name, registered):
        ctx = replace(ctx, run_id=parent.info.run_id, commit=git_commit(ctx.root))
        mlflow.set_tags(release_steps.run_tags(ctx))
        release_steps.log_run_inputs(ctx)
        mlflow.log_artifacts(str(ctx.out_dir / "validate" / "report"), "validation")
        model, quantization, quantize_note = quantize_step.quantized(ctx, model, test)  # as the flow does
        quantize_step.record_quantization(quantization)
        with tempfile.TemporaryDirectory() as tmp:  # plots and slices again: the gate needs the probabilities
            assessment = steps.assess(ctx, quantize_at_load(model), test, Path(tmp))
        mlflow.log_artifacts(str(ctx.out_dir / "evaluate" / "plots"), "plots")
        mlflow.log_metrics({f"test_{k}": x for k, x in assessment.metrics.items()})
        for cand, metrics in result["candidates"].items():
            if cand != model.name:
                with mlflow.start_run(run_name=cand, parent_run_id=ctx.run_id, nested=True):
                    mlflow.set_tag(v.TAG_CANDIDATE, cand)
                    mlflow.log_metrics({f"val_{k}": x for k, x in metrics.items()})
        outcome = CandidateOutcome(model, EvalResult(model.name, "val", 0, result["candidates"][model.name]))
        child_id, model_uri = candidate_runs.log_candidate(ctx.run_id, outcome, accepted.drop(columns=[ctx.target]))
        report_uri = f"{mlflow.get_artifact_uri('validation')}/validation_report.html"
        released = release_steps.release(ctx, model=quantize_at_load(model), model_uri=model_uri,
                                         child_run_id=child_id, assessment=assessment, frame=accepted,
                                         train=train_frame, test=test, validation=validation, report_uri=report_uri,
                                         registered=registered, quantization=quantization)  # fmt: skip
    record = {"version": released.version, "aliases": released.aliases, "bento_tag": released.bento_tag,
              "chosen": model.name, "dataset_md5": ctx.md5, "decision": released.decision.to_dict(),
              "notes": [n for n in (quantize_note, *released.notes) if n]}  # fmt: skip
    write_json(ctx.out_dir / "release" / "release.json", record)
    log.info("released %s v%s (%s): %s", ctx.name, released.version, ", ".join(released.aliases) or "no alias",
             released.decision.reason)  # fmt: skip


# --- command line ---------------------------------------------------------------------

STAGES = {"ingest": ingest, "validate": validate, "split": split, "evaluate": evaluate, "release": release}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m flows.stages", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--out", default="runs/dvc", help="stage outputs (default: runs/dvc)")
    sub = parser.add_subparsers(dest="stage", required=True)
    for name, func in STAGES.items():
        sub.add_parser(name, help=func.__doc__.splitlines()[0] if func.__doc__ else None)
    sub.add_parser("train", help=train.__doc__.splitlines()[0]).add_argument("candidate")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one stage. Exit codes: 2 bad params, 3 no data, 4 data rejected, 5 stale outputs."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("great_expectations", "alembic", "mlflow.store", "urllib3", "git", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from flows.runtime import exit_code_for

    try:
        ctx = steps.resolve(args.params, driver="dvc", out_dir=Path(args.out), require_data=args.stage == "ingest")
        train(ctx, args.candidate) if args.stage == "train" else STAGES[args.stage](ctx)
    except StaleOutputsError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_STALE
    except Exception as err:
        code = exit_code_for(err)
        if code is None:
            raise
        return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
