"""The `training-pipeline` Prefect flow: a recipe over the components.

validate → split → train candidates → choose on validation → assess on test →
gate against the champion → register → package → promote (compare-and-set).
Each task is a thin wrapper over a component; I/O tasks retry.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from components.config import ConfigError, Settings, load_settings, params_hash
from components.data import dataset as data_mod
from components.model.trained import TrainedModel
from components.release import registry
from components.release.lineage import git_commit, lineage_tags
from components.release.summary import RunSummary, redact_uri, render_markdown
from components.training.families import check_supported_target
from components.training.search import CandidateOutcome
from flows.fitting import FitEngine, train_and_choose

IO_RETRIES = {"retries": 3, "retry_delay_seconds": [2, 5, 15]}


@task(name="load-dataset")
def load_dataset_task(path: Path, contract_path: str | None) -> tuple[Any, str]:
    from components.data.contract import load_contract, read_with_contract

    if not path.is_file():
        data_mod.load_dataset(path)  # raises DataNotFoundError with the how-to
    frame = read_with_contract(path, load_contract(contract_path)) if contract_path else data_mod.load_dataset(path)
    return frame, data_mod.file_md5(path)


@task(name="validate-dataset")
def validate_task(frame, contract_path: str | None, target: str, reference, out_dir: Path, basic: dict[str, Any]):
    from components.data.contract import load_contract, model_frame
    from components.validation.checks import DataRejectedError, basic_contract, validate_frame
    from components.validation.report_html import write_report

    contract = load_contract(contract_path) if contract_path else basic_contract(frame, target, **basic)
    report, accepted = validate_frame(frame, contract, reference=reference, quarantine_path=out_dir / "quarantine.csv")
    html = write_report(report, out_dir, title=f"Validation of {len(frame)} rows")
    if not report.success:
        raise DataRejectedError(report, html)
    return report, model_frame(accepted, contract), html


@task(name="drift-reference")
def reference_task(name: str, root: Path, frame, md5: str, settings: Settings, contract_path: str | None):
    """The data the champion was trained on (via its dataset md5 and the DVC cache), else our training split."""
    from components.data.contract import load_contract, normalise

    champion = registry.alias_version(name, "champion")
    if champion is not None:
        champion_md5 = registry.client().get_model_version(name, champion).tags.get("dataset_md5")
        if champion_md5 == md5:
            return frame, f"champion v{champion}'s dataset (md5 {md5}, unchanged)"
        cached = data_mod.find_in_dvc_cache(root, champion_md5 or "")
        if cached is not None:
            ref = data_mod.load_dataset_file(cached)
            ref = normalise(ref, load_contract(contract_path)) if contract_path else ref
            return ref, f"champion v{champion}'s dataset (md5 {champion_md5}, from the DVC cache)"
    d = settings.data
    train = data_mod.split(frame, d.target, d.test_size, d.val_size, d.seed).train
    return train, "this dataset's training split (no champion dataset to compare against)"


@task(name="assess-on-test")
def assess_task(model: TrainedModel, test, settings: Settings, out_dir: Path):
    from components.evaluation.assess import assess_on_test

    ev = settings.evaluate
    return assess_on_test(
        model,
        test,
        settings.data.target,
        slice_columns=ev.slices.columns,
        min_slice_size=ev.slices.min_size,
        bins=ev.slices.bins,
        behaviour_specs=ev.behaviour,
        out_dir=out_dir,
    )


@task(name="champion-on-test", **IO_RETRIES)
def champion_task(name: str, test, target: str) -> tuple[str | None, Any]:
    from components.evaluation.assess import champion_proba

    version = registry.alias_version(name, "champion")
    if version is None:
        return None, None
    return version, champion_proba(f"models:/{name}/{version}", test, target)


@task(name="gate")
def gate_task(settings: Settings, assessment, champion_version: str | None, champ_proba, test, baseline_proba):
    from components.evaluation.slices import slice_metrics
    from components.release.gates import GatePolicy, decide

    p, ev = settings.promote, settings.evaluate
    policy = GatePolicy(
        primary_metric=ev.primary_metric,
        policy=p.policy,
        margin=p.margin,
        n_resamples=p.n_resamples,
        confidence=p.confidence,
        seed=p.seed,
        max_slice_drop=p.max_slice_drop,
        thresholds=dict(ev.thresholds),
    )
    champion_slices = None
    if champ_proba is not None:
        champion_slices = slice_metrics(
            test.drop(columns=[settings.data.target]),
            assessment.y_true,
            champ_proba,
            slice_columns=ev.slices.columns,
            min_size=ev.slices.min_size,
            threshold=ev.decision_threshold,
            bins=ev.slices.bins,
        )
    return decide(
        challenger_metrics=assessment.metrics,
        policy=policy,
        y_true=assessment.y_true,
        challenger_proba=assessment.proba,
        champion_proba=champ_proba,
        baseline_proba=baseline_proba,
        challenger_slices=assessment.slices,
        champion_slices=champion_slices,
        behaviour=assessment.behaviour,
        champion_version=champion_version,
        threshold=ev.decision_threshold,
    )


@task(name="log-candidate", **IO_RETRIES)
def log_candidate_task(parent_run_id: str, outcome: CandidateOutcome, example) -> tuple[str, str]:
    """One child run per candidate (params, validation metrics, the model), one grandchild per search trial."""
    import mlflow

    model, val = outcome.model, outcome.result
    with mlflow.start_run(run_name=model.name, parent_run_id=parent_run_id, nested=True) as child:
        mlflow.set_tag("candidate", model.name)
        mlflow.log_params({"family": model.family, **model.params})
        mlflow.log_metrics({f"val_{k}": v for k, v in val.metrics.items()})
        if outcome.search is not None:
            _log_trials(child.info.run_id, outcome)
        return child.info.run_id, registry.log_model(model, example)


def _log_trials(candidate_run_id: str, outcome: CandidateOutcome) -> None:
    import mlflow

    search = outcome.search
    mlflow.log_dict(search.to_dict(), "search.json")
    mlflow.set_tags({"search.best_trial": str(search.best_number), "search.n_trials": str(len(search.trials))})
    for trial in search.trials:
        name = f"{search.candidate}-trial-{trial.number}"
        with mlflow.start_run(run_name=name, parent_run_id=candidate_run_id, nested=True):
            mlflow.set_tags({"candidate": search.candidate, "trial": str(trial.number), "trial_state": trial.state})
            mlflow.set_tag("best_trial", str(trial.number == search.best_number).lower())
            mlflow.log_params(trial.params)
            if trial.reason:
                mlflow.set_tag("failure", trial.reason[:500])
            if trial.number in (outcome.trial_results or {}):
                mlflow.log_metrics({f"val_{k}": v for k, v in outcome.trial_results[trial.number].metrics.items()})


@task(name="register-model", **IO_RETRIES)
def register_task(model_uri: str, name: str, run_id: str, tags: dict[str, str]):
    return registry.register(model_uri, name, run_id, tags)


@task(name="build-bento", **IO_RETRIES)
def package_task(settings: Settings, version: str, metadata: dict[str, str], schema: dict, root: Path) -> str:
    from components.release.package import build_bento

    return build_bento(
        registered_model=settings.promote.registered_model,
        version=version,
        service_name=settings.package.service_name,
        metadata=metadata,
        schema=schema,
        constraints=root / "constraints.txt",
        max_batch=settings.serve.max_batch,
        low_confidence_threshold=settings.serve.low_confidence_threshold,
    )


@task(name="infra-validation")
def infra_task(bento_tag: str, rows, model_uri: str, p95_budget_ms: float):
    """Serve the exact bento on a free loopback port and compare it with the registered pyfunc."""
    from components.release.infra_validation import validate_bento

    return validate_bento(bento_tag, rows, model_uri, p95_budget_ms=p95_budget_ms)


@task(name="promote", **IO_RETRIES)
def promote_task(name: str, version: str, expected: str | None, reason: str, root: Path):
    from components.release.promotion import compare_and_set_champion

    return compare_and_set_champion(name, version, expected=expected, reason=reason, lock_dir=root / ".mlops")


def _basic_rules(settings: Settings) -> dict[str, Any]:
    """The checks params.yaml asks for when no contract is configured."""
    return {"min_rows": settings.validate_.min_rows, "max_null_fraction": settings.validate_.max_null_fraction}


def _request_schema(frame, feature_columns: list[str], contract_path: str | None) -> dict:
    from components.serving import request_schema

    if contract_path:
        from components.data.contract import load_contract

        return request_schema.schema_from_contract(load_contract(contract_path), feature_columns)
    return request_schema.schema_from_frame(frame, feature_columns)


def _skipped(name: str, version: dict, fingerprint: str, md5: str, path: str, tracking_uri: str) -> dict:
    """Nothing changed since ``version``: say so, train nothing, register nothing."""
    note = (
        f"nothing changed since {name} v{version['version']} (same dataset md5, params and code: "
        f"fingerprint {fingerprint}); nothing trained or registered. Use --force to train anyway."
    )
    get_run_logger().info(note)
    summary = RunSummary(
        dataset_path=path,
        dataset_md5=md5,
        n_rows=0,
        split_sizes={},
        validation="skipped",
        candidates={},
        chosen=None,
        registered_model=name,
        version=version["version"],
        aliases=version["aliases"],
        bento_tag=version["tags"].get("bento_tag"),
        decision="skipped: " + note,
        tracking_uri=redact_uri(tracking_uri),
        skipped=True,
    )
    markdown = render_markdown(summary)
    create_markdown_artifact(markdown, key="training-summary", description="training-pipeline run summary")
    return json.loads(json.dumps(summary.to_dict(), default=str)) | {"markdown": markdown}


@dataclass(frozen=True)
class _RunContext:
    """What every later step needs to know about this run."""

    settings: Settings
    root: Path
    name: str
    target: str
    contract_path: str | None
    out_dir: Path
    md5: str = ""
    phash: str = ""
    code_hash: str = ""
    fingerprint: str = ""
    commit: str = ""
    run_id: str = ""


def _resolve(params_path: str, overrides: list[str] | None, data_path: str | None, contract: str | None):
    """Effective settings for this run; a contract passed in names its own target.

    Dataset-specific settings (model name, thresholds, slices, behaviour) come from the contract
    where params.yaml leaves them null, so a fresh contract needs no --set.
    """
    from components import dataset_settings
    from components.data.contract import load_contract
    from components.training.families import check_supported_target

    root = Path(params_path).resolve().parent
    extra = list(overrides or [])
    extra += [f"data.path={data_path}"] if data_path else []
    if contract:  # bring-your-own data
        extra += [f"validate.contract={Path(contract).resolve()}", f"data.target={load_contract(contract).target}"]
    settings = load_settings(params_path, extra)
    contract_path = str((root / settings.validate_.contract).resolve()) if settings.validate_.contract else None
    loaded = load_contract(contract_path) if contract_path else None
    if loaded is not None and loaded.target != settings.data.target:
        raise ConfigError(
            f"data.target is '{settings.data.target}' but the contract "
            f"{settings.validate_.contract} declares target '{loaded.target}'"
        )
    if loaded is not None:
        check_supported_target(loaded.labels, loaded.target, where=f"contract {settings.validate_.contract}: labels")
    settings = dataset_settings.resolve(settings, loaded)
    run_dir = root / "runs" / f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    return _RunContext(
        settings=settings,
        root=root,
        name=settings.promote.registered_model,
        target=settings.data.target,
        contract_path=contract_path,
        out_dir=run_dir,
    )


def _release(ctx: _RunContext, model: TrainedModel, frame, test, decision, champion_version: str | None, version):
    """Package, infra-validate, promote (compare-and-set) or mark challenger. Returns (bento tag, aliases, notes)."""
    name = ctx.name
    if not decision.promote:
        if champion_version is not None and all(t["passed"] for t in decision.thresholds.values()):
            from components.release.promotion import mark_challenger

            mark_challenger(name, version.version, lock_dir=ctx.root / ".mlops")
            return None, ["challenger"], []
        return None, [], []
    metadata = {
        "model_version": version.version,
        "dataset_md5": ctx.md5,
        "git_commit": ctx.commit,
        "params_hash": ctx.phash,
        "candidate": model.name,
        "decision": "promote",
    }
    schema = _request_schema(frame, model.feature_columns, ctx.contract_path)
    bento_tag = package_task(ctx.settings, version.version, metadata, schema, ctx.root)
    registry.set_version_tags(name, version.version, {"bento_tag": bento_tag})
    infra = ctx.settings.package.infra_validation
    if infra.enabled:
        rows = test.drop(columns=[ctx.target])[model.feature_columns].head(infra.rows)
        check = infra_task(bento_tag, rows, f"models:/{name}/{version.version}", infra.p95_budget_ms)
        registry.set_version_tags(name, version.version, {"infra_validation": check.reason[:500]})
        if not check.passed:
            why = f"infra validation failed, champion kept: {check.reason}"
            registry.set_version_tags(name, version.version, {"decision": "keep", "decision_reason": why[:500]})
            return bento_tag, [], [why]
    outcome = promote_task(name, version.version, champion_version, decision.reason, ctx.root)
    if outcome.promoted:
        registry.set_version_tags(name, version.version, {"decision": "promote"})
        return bento_tag, ["champion"], []
    registry.set_version_tags(name, version.version, {"decision": "keep", "decision_reason": outcome.reason})
    return bento_tag, [], [outcome.reason]


@contextmanager
def _failures_recorded(name: str, registered: list[str]) -> Iterator[None]:
    """A run that fails says why: an `error` tag on the MLflow run (which ends FAILED) and, once it has
    registered a version, `decision=failed` with the reason on that version."""
    import mlflow

    try:
        yield
    except BaseException as err:
        why = f"{type(err).__name__}: {err}"[:500]
        with suppress(Exception):  # the original error matters more than a failure to record it
            mlflow.set_tag("error", why)
        if registered:
            with suppress(Exception):
                registry.set_version_tags(name, registered[0], {"decision": "failed", "decision_reason": why})
        raise


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
    from mlflow.entities import Metric

    from components.fingerprint import code_fingerprint, run_fingerprint, without_engine
    from flows.runtime import prepare_environment

    logger = get_run_logger()
    prepare_environment(Path(params_path).resolve().parent)
    ctx = _resolve(params_path, overrides, data_path, contract)
    settings, name, target = ctx.settings, ctx.name, ctx.target
    tracking_uri = registry.configure_tracking(ctx.root)

    frame, md5 = load_dataset_task((ctx.root / settings.data.path).resolve(), ctx.contract_path)
    logger.info("dataset %s md5 %s: %d rows", settings.data.path, md5, len(frame))
    phash, code_hash = params_hash(settings.as_params()), code_fingerprint(["components", "flows.training"])
    # The engine (train.parallel) never changes what is trained, so it is no reason to run again.
    fingerprint = run_fingerprint(md5, params_hash(without_engine(settings.as_params())), code_hash)
    ctx = replace(ctx, md5=md5, phash=phash, code_hash=code_hash, fingerprint=fingerprint)
    done = registry.find_completed(name, ctx.fingerprint)
    if done is not None and not force:
        return _skipped(name, done, ctx.fingerprint, md5, settings.data.path, tracking_uri)

    # A local Dask cluster (train.parallel.engine: dask) starts now and warms up while the data is validated.
    engine = FitEngine(settings.train.parallel)
    registered: list[str] = []  # the version this run registered, once it has
    with engine, mlflow.start_run(run_name="training-pipeline") as parent, _failures_recorded(name, registered):
        ctx = replace(ctx, run_id=parent.info.run_id, commit=git_commit(ctx.root))
        mlflow.set_tags(
            {
                "dataset_md5": md5,
                "git_commit": ctx.commit,
                "params_hash": phash,
                "code_hash": code_hash,
                "fingerprint": ctx.fingerprint,
                "run_dir": str(ctx.out_dir),
            }
        )
        mlflow.log_dict(settings.as_params(), "params.json")

        # validate
        reference, reference_note = reference_task(name, ctx.root, frame, md5, settings, ctx.contract_path)
        logger.info("drift reference: %s", reference_note)
        try:
            report, frame, _ = validate_task(
                frame, ctx.contract_path, target, reference, ctx.out_dir, _basic_rules(settings)
            )
        finally:
            if (ctx.out_dir / "validation_report.html").exists():
                mlflow.log_artifacts(str(ctx.out_dir), "validation")
        report_uri = f"{mlflow.get_artifact_uri('validation')}/validation_report.html"
        check_supported_target(frame[target].unique(), target)

        # split, train, choose on validation
        d = settings.data
        splits = data_mod.split(frame, target, d.test_size, d.val_size, d.seed)
        logger.info("split %s", splits.sizes())
        outcomes, best, fits = train_and_choose(settings, ctx.root, splits, logger, force, engine)
        example = splits.train.drop(columns=[target])
        logged = {c: log_candidate_task(ctx.run_id, outcomes[c], example) for c in outcomes}
        model = outcomes[best.candidate].model
        mlflow.log_metrics({"fit_phase_seconds": fits.seconds, "fits_trained": fits.fitted, "fits_cached": fits.cached})

        # assess on test, gate against the champion
        assessment = assess_task(model, splits.test, settings, ctx.out_dir)
        mlflow.log_metrics({f"test_{k}": v for k, v in assessment.metrics.items()})
        mlflow.log_artifacts(str(ctx.out_dir / "plots"), "plots")
        champion_version, champ_proba = champion_task(name, splits.test, target)
        prior = float(np.mean(splits.train[target].to_numpy() == model.classes[1]))
        baseline = np.full(len(splits.test), prior)  # the class prior: what a model with no features can do
        decision = gate_task(settings, assessment, champion_version, champ_proba, splits.test, baseline)
        logger.info("gate: %s", decision.reason)

        # register, package, promote
        child_run_id, model_uri = logged[best.candidate]
        registry.client().log_batch(
            child_run_id,
            metrics=[Metric(f"test_{k}", v, int(time.time() * 1000), 0) for k, v in assessment.metrics.items()],
        )
        validation = "passed" + (f" with {len(report.warnings())} warnings" if report.warnings() else "")
        tags = (
            lineage_tags(
                dataset_md5=md5,
                dataset_path=settings.data.path,
                git=ctx.commit,
                params_hash=phash,
                candidate=model.name,
                family=model.family,
            )
            | {
                "pipeline_run_id": ctx.run_id,
                "code_hash": code_hash,
                "fingerprint": ctx.fingerprint,
                "validation": validation,
                "validation_report": report_uri,
                # "promote" only once the alias is held (_release); until then the gate's verdict is pending
                "decision": "pending" if decision.promote else "keep",
                "decision_reason": decision.reason[:500],
            }
            | decision.to_tags()
        )
        version = register_task(model_uri, name, child_run_id, tags)
        registered.append(version.version)
        mlflow.log_dict(decision.to_dict(), "promotion_decision.json")
        bento_tag, aliases, notes = _release(ctx, model, frame, splits.test, decision, champion_version, version)
        registry.set_version_tags(name, version.version, {"completed": "true"})

        summary = RunSummary(
            dataset_path=settings.data.path,
            dataset_md5=md5,
            n_rows=len(frame),
            split_sizes=splits.sizes(),
            validation=f"{validation}; drift vs {reference_note} (report: {report_uri})",
            candidates={k: v.result.metrics for k, v in outcomes.items()},
            chosen=best.candidate,
            test_metrics=assessment.metrics,
            registered_model=name,
            version=version.version,
            aliases=aliases,
            bento_tag=bento_tag,
            decision=decision.reason,
            tracking_uri=redact_uri(tracking_uri),
            run_id=ctx.run_id,
            notes=[fits.note(), *notes],
            gate=decision.summary_lines()[1:],
        )
        markdown = render_markdown(summary)
        mlflow.log_text(markdown, "summary.md")
        mlflow.log_dict(summary.to_dict(), "summary.json")
    create_markdown_artifact(markdown, key="training-summary", description="training-pipeline run summary")
    create_markdown_artifact(
        "```json\n" + json.dumps(decision.to_dict(), indent=2, default=str) + "\n```",
        key="promotion-decision",
        description="PromotionDecision of this run",
    )
    logger.info("chosen %s, registered %s v%s, aliases %s", best.candidate, name, version.version, aliases)
    return json.loads(json.dumps(summary.to_dict(), default=str)) | {"markdown": markdown}
