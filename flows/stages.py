"""`python -m flows.stages <stage>`: the DVC driver, one command per stage in dvc.yaml.

Each command runs the component functions the `training-pipeline` flow runs, in the
same order, with files under ``runs/dvc/`` between stages instead of objects in
memory. Outputs are byte-stable for equal inputs (sorted-key JSON, seeded training,
no timestamps or absolute paths), so ``dvc.lock`` reproduces on a fresh clone.

    ingest    the tracked data file read with the contract -> normalised copy + md5
    validate  contract checks; quarantined rows removed; report
    split     seeded train/val/test split
    train     one candidate (``train <name>``): model dir + validation metrics
    evaluate  choose the best on validation, assess it on test: metrics, plots
    release   gate vs champion, register, package, promote (run on purpose)
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows.runtime import EXIT_CONFIG, EXIT_NO_DATA, EXIT_REJECTED  # noqa: F401  (shared exit codes)

if TYPE_CHECKING:
    import pandas as pd

    from components.config import Settings

log = logging.getLogger("flows.stages")

EXIT_STALE = 5  # outputs older than their inputs: run `dvc repro` first


class StaleOutputsError(RuntimeError):
    """The outputs under runs/dvc are not what dvc.yaml, params and data give now."""


@dataclass(frozen=True)
class Ctx:
    """What every stage needs: settings, the project root (params paths are relative to it), the out dir."""

    settings: Settings
    root: Path
    out: Path

    def contract_path(self) -> str | None:
        contract = self.settings.validate_.contract
        return str(self.root / contract) if contract else None

    def read(self, *parts: str) -> pd.DataFrame:
        import pandas as pd

        return pd.read_parquet(self.out.joinpath(*parts))


def write_json(path: Path, data: Any) -> Path:
    """Byte-stable JSON: sorted keys, fixed indent, numpy scalars as plain numbers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, sort_keys=True, default=lambda v: v.item() if hasattr(v, "item") else str(v))
    path.write_text(text + "\n", encoding="utf-8")
    return path


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# --- stages -------------------------------------------------------------------------


def ingest(ctx: Ctx) -> None:
    """Read the DVC-tracked dataset as the flow does; write it normalised, with its md5."""
    from components.data import dataset as data

    path = ctx.root / ctx.settings.data.path
    if not path.is_file():
        data.load_dataset(path)  # raises DataNotFoundError with the how-to
    if contract := ctx.contract_path():
        from components.data.contract import load_contract, read_with_contract

        frame = read_with_contract(path, load_contract(contract))
    else:
        frame = data.load_dataset(path)
    md5 = data.file_md5(path)
    data.write_parquet(frame, ctx.out / "ingest" / "dataset.parquet")
    info = {"path": ctx.settings.data.path, "md5": md5, "rows": len(frame), "columns": list(frame.columns)}
    write_json(ctx.out / "ingest" / "dataset.json", info)
    log.info("ingest: %s md5 %s, %d rows", ctx.settings.data.path, md5, len(frame))


def validate(ctx: Ctx) -> None:
    """Contract checks; the accepted rows (quarantine removed) go on, the report is kept either way."""
    from components.data.contract import load_contract, model_frame
    from components.data.dataset import write_parquet
    from components.validation.checks import DataRejectedError, basic_contract, validate_frame
    from components.validation.report_html import write_report

    frame = ctx.read("ingest", "dataset.parquet")
    contract_path = ctx.contract_path()
    contract = (
        load_contract(contract_path)
        if contract_path
        else basic_contract(
            frame,
            ctx.settings.data.target,
            min_rows=ctx.settings.validate_.min_rows,
            max_null_fraction=ctx.settings.validate_.max_null_fraction,
        )
    )
    report_dir = ctx.out / "validate" / "report"
    report, accepted = validate_frame(frame, contract, quarantine_path=report_dir / "quarantine.csv")
    html = write_report(report, report_dir, title=f"Validation of {len(frame)} rows")
    summary = {"rows": report.n_rows, "quarantined": report.n_quarantined, "passed": report.success,
               "quarantine_fraction": report.quarantine_fraction,
               "warnings": len(report.warnings())}  # fmt: skip
    write_json(ctx.out / "metrics" / "validation.json", summary)
    if not report.success:
        raise DataRejectedError(report, html)
    write_parquet(model_frame(accepted, contract), ctx.out / "validate" / "accepted.parquet")


def split(ctx: Ctx) -> None:
    from components.data.dataset import split as seeded_split
    from components.data.dataset import write_parquet

    d = ctx.settings.data
    splits = seeded_split(ctx.read("validate", "accepted.parquet"), d.target, d.test_size, d.val_size, d.seed)
    for part, frame in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        write_parquet(frame, ctx.out / "split" / f"{part}.parquet")
    log.info("split %s", splits.sizes())


def train(ctx: Ctx, name: str) -> None:
    """Fit (or search) one candidate on train, scored on val: its model dir and val metrics.

    Same call as the Prefect flow (``choose_candidate``), fits one after another.
    """
    from components.config import ConfigError
    from components.model.trained import save_model
    from components.training.search import choose_candidate, fit_and_score

    settings = ctx.settings
    spec = settings.train.candidates.get(name)
    if spec is None:
        raise ConfigError(f"no candidate '{name}' in train.candidates (known: {', '.join(settings.train.candidates)})")
    model_dir, metrics = ctx.out / "models" / name, ctx.out / "metrics" / "val" / f"{name}.json"
    shutil.rmtree(model_dir, ignore_errors=True)  # DVC does this too; direct runs must not keep old files
    if not spec.enabled:  # DVC still needs the outputs; evaluate skips disabled candidates
        write_json(model_dir / "disabled.json", {"candidate": name, "enabled": False})
        write_json(metrics, {})
        return
    ev, search = settings.evaluate, settings.train.search
    train_frame, val_frame = ctx.read("split", "train.parquet"), ctx.read("split", "val.parquet")

    def fit_batch(specs: list[dict]) -> list:
        outcomes = []
        for one in specs:
            try:
                outcomes.append(fit_and_score(name, one, train_frame, val_frame, settings.data.target,
                                              seed=settings.train.seed, threshold=ev.decision_threshold,
                                              primary_metric=ev.primary_metric))  # fmt: skip
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


def evaluate(ctx: Ctx) -> None:
    """Choose the best enabled candidate on val (params order breaks ties), assess it on test."""
    from components.evaluation.assess import assess_on_test
    from components.evaluation.metrics import EvalResult, choose_best
    from components.model.trained import load_model

    ev, n_val = ctx.settings.evaluate, len(ctx.read("split", "val.parquet"))
    results = [EvalResult(name, "val", n_val, read_json(ctx.out / "metrics" / "val" / f"{name}.json"))
               for name in ctx.settings.train.enabled()]  # fmt: skip
    best = choose_best(results, ev.primary_metric)
    shutil.rmtree(ctx.out / "evaluate" / "plots", ignore_errors=True)
    model, test = load_model(ctx.out / "models" / best.candidate), ctx.read("split", "test.parquet")
    assessment = assess_on_test(
        model, test, ctx.settings.data.target,
        slice_columns=ev.slices.columns, min_slice_size=ev.slices.min_size, bins=ev.slices.bins,
        behaviour_specs=ev.behaviour, out_dir=ctx.out / "evaluate",
    )  # fmt: skip
    write_json(ctx.out / "metrics" / "test.json", assessment.metrics)
    result = {"chosen": best.candidate, "primary_metric": ev.primary_metric,
              "candidates": {r.candidate: r.metrics for r in results}, "test_metrics": assessment.metrics,
              "slices": assessment.slices,
              "behaviour": [b.to_dict() for b in assessment.behaviour]}  # fmt: skip
    write_json(ctx.out / "evaluate" / "result.json", result)
    log.info("chosen %s: test %s", best.candidate, assessment.metrics)


def check_up_to_date(root: Path, stage: str = "evaluate") -> None:
    """Refuse to release outputs that ``dvc repro`` would change (stale or edited by hand)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        stale = repo.status(targets=[stage], with_deps=True)
    if stale:
        raise StaleOutputsError(f"{', '.join(stale)} not up to date: run `dvc repro` first")


def release(ctx: Ctx) -> None:
    """Gate the evaluated model against the champion, register, package and promote it.

    The steps are the flow's own task bodies called as plain functions (``.fn``: no
    Prefect API), so both drivers gate, tag and promote alike, with the same tracking
    configuration. Only the chosen candidate's model is logged; the others get a
    child run with their val metrics.
    """
    if (ctx.root / "dvc.yaml").is_file():
        check_up_to_date(ctx.root)
    import tempfile

    import mlflow
    import numpy as np

    from components.config import params_hash
    from components.evaluation.metrics import EvalResult
    from components.model.trained import load_model
    from components.release import registry
    from components.release.lineage import git_commit, lineage_tags
    from components.release.promotion import mark_challenger
    from components.training.search import CandidateOutcome
    from flows import training as flow
    from flows.runtime import prepare_environment

    prepare_environment(ctx.root)
    s, target, name = ctx.settings, ctx.settings.data.target, ctx.settings.promote.registered_model
    result, md5 = (
        read_json(ctx.out / "evaluate" / "result.json"),
        read_json(ctx.out / "ingest" / "dataset.json")["md5"],
    )
    accepted, test = ctx.read("validate", "accepted.parquet"), ctx.read("split", "test.parquet")
    warnings = read_json(ctx.out / "metrics" / "validation.json")["warnings"]
    model = load_model(ctx.out / "models" / result["chosen"])
    registry.configure_tracking(ctx.root)
    with tempfile.TemporaryDirectory() as tmp:
        assessment = flow.assess_task.fn(model, test, s, Path(tmp))
    champion, champ_proba = flow.champion_task.fn(name, test, target)
    prior = float(np.mean(ctx.read("split", "train.parquet")[target].to_numpy() == model.classes[1]))
    decision = flow.gate_task.fn(s, assessment, champion, champ_proba, test, np.full(len(test), prior))
    test_metrics = {f"test_{k}": v for k, v in assessment.metrics.items()}
    with mlflow.start_run(run_name="dvc-release") as parent:
        run_id, phash, commit = parent.info.run_id, params_hash(s.as_params()), git_commit(ctx.root)
        mlflow.set_tags({"dataset_md5": md5, "git_commit": commit, "params_hash": phash, "driver": "dvc"})
        mlflow.log_dict(s.as_params(), "params.json")
        mlflow.log_artifacts(str(ctx.out / "validate" / "report"), "validation")
        mlflow.log_artifacts(str(ctx.out / "evaluate" / "plots"), "plots")
        mlflow.log_metrics(test_metrics)
        for cand, metrics in result["candidates"].items():
            if cand != model.name:
                with mlflow.start_run(run_name=cand, parent_run_id=run_id, nested=True):
                    mlflow.set_tag("candidate", cand)
                    mlflow.log_metrics({f"val_{k}": v for k, v in metrics.items()})
        val = EvalResult(model.name, "val", 0, result["candidates"][model.name])
        outcome = CandidateOutcome(model, val)
        child_id, model_uri = flow.log_candidate_task.fn(run_id, outcome, accepted.drop(columns=[target]))
        with mlflow.start_run(run_id=child_id, nested=True):
            mlflow.log_metrics(test_metrics)
        tags = lineage_tags(dataset_md5=md5, dataset_path=s.data.path, git=commit, params_hash=phash,
                            candidate=model.name, family=model.family) | decision.to_tags()  # fmt: skip
        tags |= {
            "pipeline_run_id": run_id, "driver": "dvc",
            "validation": "passed" + (f" with {warnings} warnings" if warnings else ""),
            "validation_report": f"{mlflow.get_artifact_uri('validation')}/validation_report.html",
            "decision": "pending" if decision.promote else "keep", "decision_reason": decision.reason[:500],
        }  # fmt: skip
        version = flow.register_task.fn(model_uri, name, child_id, tags).version
        mlflow.log_dict(decision.to_dict(), "promotion_decision.json")
    bento_tag, aliases = None, []
    if decision.promote:
        metadata = {"model_version": version, "dataset_md5": md5, "git_commit": commit, "params_hash": phash,
                    "candidate": model.name, "decision": "promote"}  # fmt: skip
        schema = flow._request_schema(accepted, model.feature_columns, ctx.contract_path())
        bento_tag = flow.package_task.fn(s, version, metadata, schema, ctx.root)
        registry.set_version_tags(name, version, {"bento_tag": bento_tag})
        outcome = flow.promote_task.fn(name, version, champion, decision.reason, ctx.root)
        if outcome.promoted:
            aliases = ["champion"]
            registry.set_version_tags(name, version, {"decision": "promote"})
        else:
            registry.set_version_tags(name, version, {"decision": "keep", "decision_reason": outcome.reason})
    elif all(t["passed"] for t in decision.thresholds.values()) and champion is not None:
        mark_challenger(name, version, lock_dir=ctx.root / ".mlops")
        aliases = ["challenger"]
    registry.set_version_tags(name, version, {"completed": "true"})
    record = {"version": version, "aliases": aliases, "bento_tag": bento_tag, "chosen": model.name,
              "dataset_md5": md5, "decision": decision.to_dict()}  # fmt: skip
    write_json(ctx.out / "release" / "release.json", record)
    log.info("released %s v%s (%s): %s", name, version, ", ".join(aliases) or "no alias", decision.reason)


# --- command line ---------------------------------------------------------------------

# Stages that read dataset-specific settings (slices, behaviour, thresholds, model name) from the contract.
DATASET_SPECIFIC = ("evaluate", "release")
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
    from components.config import load_settings
    from components.dataset_settings import load_configured_contract, resolve
    from flows.runtime import exit_code_for

    try:
        settings, root = load_settings(args.params), Path(args.params).resolve().parent
        if args.stage in DATASET_SPECIFIC:  # the others need no contract-derived setting: a missing file says so first
            settings = resolve(settings, load_configured_contract(settings, root))
        ctx = Ctx(settings, root, Path(args.out))
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
