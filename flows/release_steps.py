"""The release half of the pipeline, one body per step: gate, register, package, infra-validate, promote.

Both drivers run the same tail through :func:`release`: the Prefect flow hands it a :class:`Runner`
whose steps are Prefect tasks (named, retried), the DVC release stage the plain functions. So a
version released either way carries the same tags, the same decision record and has passed the same
infra validation before it could be promoted. MLflow, BentoML and the modules that load model
libraries are imported inside the steps that use them: each costs seconds, which a skipped run or a
rejected dataset should not pay.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from components import vocabulary as v
from components.release import registry, run_records
from components.release.lineage import lineage_tags
from flows.quantize_step import quantization_tags
from flows.steps import RunContext

if TYPE_CHECKING:
    import pandas as pd

    from components.model.trained import TrainedModel


def run_tags(ctx: RunContext) -> dict[str, str]:
    """Tags of the driver's parent MLflow run: what it trained on and with."""
    return {v.TAG_DATASET_MD5: ctx.md5, v.TAG_GIT_COMMIT: ctx.commit, v.TAG_PARAMS_HASH: ctx.phash,
            v.TAG_CODE_HASH: ctx.code_hash, v.TAG_FINGERPRINT: ctx.fingerprint, v.TAG_DRIVER: ctx.driver,
            "run_dir": _under_project(ctx)}  # fmt: skip


def _under_project(ctx: RunContext) -> str:
    """The run's folder relative to the project (what a reader can find), absolute only when it is elsewhere."""
    out = ctx.out_dir.resolve()
    return str(out.relative_to(ctx.root.resolve())) if out.is_relative_to(ctx.root.resolve()) else str(out)


def log_run_inputs(ctx: RunContext) -> None:
    """The effective params and the contract file, on the driver's parent run: what a version was trained
    with, read back by batch inference (its contract) and by people (params.json)."""
    import mlflow

    mlflow.log_dict(ctx.settings.as_params(), "params.json")
    if ctx.settings.validate_.contract:
        mlflow.log_artifact(str((ctx.root / ctx.settings.validate_.contract).resolve()), "contract")


def champion_scores(ctx: RunContext, model: TrainedModel, test: pd.DataFrame) -> tuple[str | None, np.ndarray | None]:
    """The current champion's version and its scores on the held-out rows (through its pyfunc), in the
    challenger's form: positive-class probabilities, per-class probabilities in its class order, or values."""
    from components.evaluation.assess import champion_scores as scores_of

    version = registry.alias_version(ctx.name, ctx.settings.promote.alias)
    if version is None:
        return None, None
    uri = f"models:/{ctx.name}/{version}"
    return version, scores_of(uri, test, ctx.target, task=ctx.task, classes=model.classes)


def baseline(ctx: RunContext, model: TrainedModel, train: pd.DataFrame, n_rows: int) -> np.ndarray:
    """What a model with no features says on ``n_rows`` rows: the training split's class prior or mean."""
    from components.evaluation.metrics import baseline_scores

    y = model.encode_target(train[ctx.target], what=f"training target '{ctx.target}'")
    return baseline_scores(ctx.task, y, n_rows, len(model.classes) or None,
                           metric=ctx.settings.evaluate.primary_metric, seed=ctx.settings.promote.seed)  # fmt: skip


def gate(ctx: RunContext, assessment: Any, baseline: np.ndarray, test: pd.DataFrame, champion: str | None,
         champ_proba) -> Any:  # fmt: skip
    """The promotion decision: thresholds or the no-feature baseline, behaviour, champion, slices.

    ``baseline`` holds the scores of a model with no features on the test rows (see :func:`baseline`).
    """
    from components.evaluation.slices import slice_metrics

    ev = ctx.settings.evaluate
    champion_slices = None
    n_classes = assessment.proba.shape[1] if assessment.proba.ndim == 2 else None
    if champ_proba is not None:
        champion_slices = slice_metrics(test.drop(columns=[ctx.target]), assessment.y_true, champ_proba,
                                        slice_columns=ev.slices.columns, min_size=ev.slices.min_size,
                                        threshold=ev.decision_threshold, bins=ev.slices.bins, task=ctx.task,
                                        n_classes=n_classes)  # fmt: skip
    return decide_gate(ctx, assessment, baseline, champion, champ_proba, champion_slices)


def decide_gate(ctx: RunContext, assessment: Any, baseline: np.ndarray, champion: str | None, champ_proba,
                champion_slices: dict[str, Any] | None) -> Any:  # fmt: skip
    """:func:`gate` once the champion's slices are known (an image gate slices by class, not by column)."""
    from components.release.gates import GatePolicy, decide

    p, ev = ctx.settings.promote, ctx.settings.evaluate
    policy = GatePolicy(primary_metric=ev.primary_metric, policy=p.policy, margin=p.margin, n_resamples=p.n_resamples,
                        confidence=p.confidence, seed=p.seed, max_slice_drop=p.max_slice_drop,
                        thresholds=dict(ev.thresholds))  # fmt: skip
    return decide(challenger_metrics=assessment.metrics, policy=policy, y_true=assessment.y_true,
                  challenger_proba=assessment.proba, champion_proba=champ_proba, baseline_proba=baseline,
                  task=ctx.task,
                  challenger_slices=assessment.slices, champion_slices=champion_slices,
                  behaviour=assessment.behaviour, champion_version=champion,
                  threshold=ev.decision_threshold)  # fmt: skip


def version_tags(ctx: RunContext, model: TrainedModel, decision: Any, validation: str, report_uri: str,
                 quantization: dict[str, Any] | None = None):  # fmt: skip
    """Every tag a new version starts with: lineage, inputs, validation, the gate, its int8 form. One place,
    both drivers."""
    return (
        lineage_tags(
            dataset_md5=ctx.md5,
            dataset_path=ctx.settings.data.path,
            git=ctx.commit,
            params_hash=ctx.phash,
            candidate=model.name,
            family=model.family,
            task=model.task,
        )  # fmt: skip
        | {
            v.TAG_PRIMARY_METRIC: str(ctx.settings.evaluate.primary_metric),
            v.TAG_PIPELINE_RUN: ctx.run_id,
            v.TAG_DRIVER: ctx.driver,
            v.TAG_CODE_HASH: ctx.code_hash,
            v.TAG_FINGERPRINT: ctx.fingerprint,
            v.TAG_VALIDATION: validation,
            v.TAG_VALIDATION_REPORT: report_uri,
            # "promote" only once the alias is held (release); until then the gate's verdict is pending
            v.TAG_DECISION: v.DECISION_PENDING if decision.promote else v.DECISION_KEEP,
            v.TAG_DECISION_REASON: decision.reason[:500],
        }
        # the gate's reason is decision_reason here (set once: it says why the version is what it is)
        | {k: x for k, x in decision.to_tags().items() if k != "gate.reason"}
        | (quantization_tags(quantization) if quantization is not None else {})
    )


def package(ctx: RunContext, version: str, model: TrainedModel, frame: pd.DataFrame,
            test: pd.DataFrame | None = None) -> str:  # fmt: skip
    """A bento from the registered version, with its lineage and the contract's request schema;
    a ``test`` row is its OpenAPI example."""
    from components.release.package import build_bento
    from components.serving import request_schema

    metadata = {"model_version": version, "dataset_md5": ctx.md5, "git_commit": ctx.commit, "params_hash": ctx.phash,
                "candidate": model.name, "decision": v.DECISION_PROMOTE}  # fmt: skip
    if ctx.contract is not None:
        schema = request_schema.schema_from_contract(ctx.contract, model.feature_columns)
    else:
        schema = request_schema.schema_from_frame(frame, model.feature_columns)
    s = ctx.settings
    buckets = _value_buckets(frame[ctx.target]) if ctx.task == "regression" else None
    return build_bento(registered_model=ctx.name, version=version, service_name=s.package.service_name,
                       metadata=metadata, schema=schema, constraints=ctx.root / "constraints.txt",
                       max_batch=s.serve.max_batch, low_confidence_threshold=s.serve.low_confidence_threshold,
                       task=model.task, classes=model.classes or None,
                       value_buckets=buckets, example_rows=test)  # fmt: skip


def _value_buckets(target: pd.Series, n: int = 10) -> list[float]:
    """Histogram buckets for served regression values: the target's deciles, so each holds about a tenth."""
    edges = np.unique(np.quantile(target.to_numpy(dtype=np.float64), np.linspace(0, 1, n + 1)))
    return [float(x) for x in edges]


def infra_validate(ctx: RunContext, bento_tag: str, rows: pd.DataFrame, version: str):
    """Serve the exact bento on a free loopback port and compare it with the registered pyfunc."""
    from components.release.infra_validation import validate_bento

    budget = ctx.settings.package.infra_validation.p95_budget_ms
    # The server stops while promotion goes on; the process waits for that before it exits.
    return validate_bento(
        bento_tag, rows, f"models:/{ctx.name}/{version}", p95_budget_ms=budget, stop_in_background=True
    )


def promote(ctx: RunContext, version: str, expected: str | None, reason: str):
    from components.release.promotion import compare_and_set_champion

    return compare_and_set_champion(ctx.name, version, expected=expected, reason=reason,
                                    lock_dir=ctx.root / ".mlops", alias=ctx.settings.promote.alias)  # fmt: skip


def store_reference(ctx: RunContext, model: TrainedModel, version: str) -> str:
    """The version's predictions on its drift reference, logged with it, so that its first batch's drift
    report needs no scoring; what it stored, or why not (monitoring never stops a release)."""
    from components.inference import champion as ch
    from components.monitoring.reference_scores import store_reference_scores

    try:
        registered = ch.registered_version(ctx.name, version)
        contract, _ = ch.version_contract(registered, ctx.root, ctx.settings)
        reference, note = ch.training_reference(registered, ctx.root, ctx.settings, contract)
        if reference is None or registered.model_run_id is None:
            return f"reference predictions not stored ({note}): a batch scores them"
        target = contract.target if contract is not None else ctx.target
        return store_reference_scores(reference, model.predict_frame, target, model.task, registered.model_run_id)
    except Exception as err:  # the first batch scores the reference itself, as before
        return f"reference predictions not stored ({type(err).__name__}: {err}): the first batch scores them"


@dataclass(frozen=True)
class Runner:
    """How a driver runs the steps that touch the registry and the bento store (plain, or as tasks)."""

    champion_scores: Callable = champion_scores
    gate: Callable = gate
    register: Callable = registry.register
    store_reference: Callable = store_reference
    package: Callable = package
    infra_validate: Callable = infra_validate
    promote: Callable = promote


@dataclass
class Released:
    version: str
    decision: Any
    champion: str | None
    bento_tag: str | None = None
    aliases: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def release(ctx: RunContext, *, model: TrainedModel, model_uri: str, child_run_id: str, assessment: Any,
            frame: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame, validation: str, report_uri: str,
            run: Runner = Runner(), registered: list[str] | None = None,
            quantization: dict[str, Any] | None = None) -> Released:  # fmt: skip
    """Gate, register, then package, infra-validate and promote (compare-and-set) what earned it.

    Runs inside the driver's MLflow parent run; the version is marked completed last. The version is
    appended to ``registered`` as soon as it exists, so a failure after it can be recorded on it.
    """
    import mlflow
    from mlflow.entities import Metric

    champion, champ_proba = run.champion_scores(ctx, model, test)
    decision = run.gate(ctx, assessment, baseline(ctx, model, train, len(test)), test, champion, champ_proba)
    now = int(time.time() * 1000)
    registry.client().log_batch(child_run_id, metrics=[Metric(f"test_{k}", x, now, 0)
                                                       for k, x in assessment.metrics.items()])  # fmt: skip
    tags = version_tags(ctx, model, decision, validation, report_uri, quantization)
    version = run.register(model_uri, ctx.name, child_run_id, tags).version
    if registered is not None:
        registered.append(version)
    decision = replace(decision, challenger_version=version)
    out = Released(version, decision, champion)
    mlflow.log_dict(decision.to_dict(), "promotion_decision.json")
    mlflow.set_tags(run_records.parent_tags(ctx.name, version, decision))
    run_records.set_model_description(ctx.name, model_description(ctx))
    out.notes.append(run.store_reference(ctx, model, version))
    if decision.promote:
        _package_and_promote(ctx, out, model, frame, test, run)
    elif champion is not None and all(t["passed"] for t in decision.thresholds.values()):
        from components.release.promotion import mark_challenger

        mark_challenger(ctx.name, version, lock_dir=ctx.root / ".mlops")
        out.aliases = [v.ALIAS_CHALLENGER]
    registry.set_version_tags(ctx.name, version, {v.TAG_COMPLETED: "true"})
    mlflow.set_tag(run_records.DESCRIPTION, run_records.release_description(ctx.name, version, decision, out.aliases,
                                                                          out.notes))  # fmt: skip
    return out


def model_description(ctx: RunContext) -> str:
    s = ctx.settings
    contract = None if ctx.contract is None else f"{ctx.contract.name}" + (
        f" ({s.validate_.contract})" if s.validate_.contract else "")  # fmt: skip
    return run_records.model_description(ctx.name, task=ctx.task, target=ctx.target, dataset=str(s.data.path),
                                         primary_metric=str(s.evaluate.primary_metric), contract=contract,
                                         alias=str(s.promote.alias))  # fmt: skip


def _package_and_promote(ctx: RunContext, out: Released, model, frame, test, run: Runner) -> None:
    name, version = ctx.name, out.version
    out.bento_tag = run.package(ctx, version, model, frame, test)
    registry.set_version_tags(name, version, {v.TAG_BENTO: out.bento_tag})
    infra = ctx.settings.package.infra_validation
    if infra.enabled:
        rows = test.drop(columns=[ctx.target])[model.feature_columns].head(infra.rows)
        check = run.infra_validate(ctx, out.bento_tag, rows, version)
        registry.set_version_tags(name, version, {v.TAG_INFRA: check.reason[:500]})
        if not check.passed:
            why = f"infra validation failed, champion kept: {check.reason}"
            kept = {v.TAG_DECISION: v.DECISION_KEEP, v.TAG_DECISION_REASON: why[:500]}
            registry.set_version_tags(name, version, kept)
            out.notes.append(why)
            return
    checked = "the gate and infra validation" if infra.enabled else "the gate (infra validation off)"
    outcome = run.promote(ctx, version, out.champion, f"passed {checked} of run {ctx.run_id}")
    if outcome.promoted:
        registry.set_version_tags(name, version, {v.TAG_DECISION: v.DECISION_PROMOTE})
        out.aliases = [ctx.settings.promote.alias]
        return
    registry.set_version_tags(name, version, {v.TAG_DECISION: v.DECISION_KEEP, v.TAG_DECISION_REASON: outcome.reason})
    out.notes.append(outcome.reason)
