"""The `training-pipeline` Prefect flow: a recipe over the components.

validate → split → train candidates → choose on validation → assess on test →
gate against the champion → register → package → promote (compare-and-set).
Each task is a thin wrapper over a component; I/O tasks retry.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from components import data as data_mod
from components import registry
from components.config import ConfigError, Settings, load_settings, params_hash
from components.evaluate import EvalResult, choose_best, evaluate
from components.lineage import git_commit, lineage_tags
from components.model import TrainedModel
from components.summary import RunSummary, render_markdown

IO_RETRIES = {"retries": 3, "retry_delay_seconds": [2, 5, 15]}


@task(name="load-dataset")
def load_dataset_task(path: Path, contract_path: str | None) -> tuple[Any, str]:
    from components.contract import load_contract, read_with_contract

    if not path.is_file():
        data_mod.load_dataset(path)  # raises DataNotFoundError with the how-to
    frame = read_with_contract(path, load_contract(contract_path)) if contract_path else data_mod.load_dataset(path)
    return frame, data_mod.file_md5(path)


@task(name="validate-dataset")
def validate_task(frame, contract_path: str | None, target: str, reference, out_dir: Path):
    from components.contract import load_contract
    from components.report_html import write_report
    from components.validation import DataRejectedError, basic_contract, validate_frame

    contract = load_contract(contract_path) if contract_path else basic_contract(frame, target)
    report, accepted = validate_frame(frame, contract, reference=reference, quarantine_path=out_dir / "quarantine.csv")
    html = write_report(report, out_dir, title=f"Validation of {len(frame)} rows")
    if not report.success:
        raise DataRejectedError(report, html)
    return report, accepted, html


@task(name="drift-reference")
def reference_task(name: str, root: Path, frame, md5: str, settings: Settings, contract_path: str | None):
    """The data the champion was trained on (via its dataset md5 and the DVC cache), else our training split."""
    from components.contract import load_contract, normalise

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


@task(name="train-candidate")
def train_task(name: str, spec: dict[str, Any], train_frame, target: str, seed: int, threshold: float):
    from components.train import train_candidate

    X, y = data_mod.features_and_target(train_frame, target)
    return train_candidate(name, spec["family"], spec, X, y, seed=seed, threshold=threshold)


@task(name="evaluate-candidate")
def evaluate_task(model: TrainedModel, frame, target: str, split: str) -> EvalResult:
    return evaluate(model, frame, target, split)


@task(name="assess-on-test")
def assess_task(model: TrainedModel, test, settings: Settings, out_dir: Path):
    from components.assess import assess_on_test

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
    from components.assess import champion_proba

    version = registry.alias_version(name, "champion")
    if version is None:
        return None, None
    return version, champion_proba(f"models:/{name}/{version}", test, target)


@task(name="gate")
def gate_task(settings: Settings, assessment, champion_version: str | None, champ_proba, test):
    from components.gates import GatePolicy, decide
    from components.slices import slice_metrics

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
        challenger_slices=assessment.slices,
        champion_slices=champion_slices,
        behaviour=assessment.behaviour,
        champion_version=champion_version,
        threshold=ev.decision_threshold,
    )


@task(name="log-candidate", **IO_RETRIES)
def log_candidate_task(parent_run_id: str, model: TrainedModel, val: EvalResult, example) -> tuple[str, str]:
    """One child run per candidate: params, validation metrics and the model itself."""
    import mlflow

    with mlflow.start_run(run_name=model.name, parent_run_id=parent_run_id, nested=True) as child:
        mlflow.set_tag("candidate", model.name)
        mlflow.log_params({"family": model.family, **model.params})
        mlflow.log_metrics({f"val_{k}": v for k, v in val.metrics.items()})
        return child.info.run_id, registry.log_model(model, example)


@task(name="register-model", **IO_RETRIES)
def register_task(model_uri: str, name: str, run_id: str, tags: dict[str, str]):
    return registry.register(model_uri, name, run_id, tags)


@task(name="build-bento", **IO_RETRIES)
def package_task(settings: Settings, version: str, metadata: dict[str, str], schema: dict, root: Path) -> str:
    from components.package import build_bento

    return build_bento(
        registered_model=settings.promote.registered_model,
        version=version,
        service_name=settings.package.service_name,
        metadata=metadata,
        schema=schema,
        constraints=root / "constraints.txt",
    )


@task(name="promote", **IO_RETRIES)
def promote_task(name: str, version: str, expected: str | None, reason: str, root: Path):
    from components.promotion import compare_and_set_champion

    return compare_and_set_champion(name, version, expected=expected, reason=reason, lock_dir=root / ".mlops")


def _request_schema(frame, feature_columns: list[str], contract_path: str | None) -> dict:
    from components import request_schema

    if contract_path:
        from components.contract import load_contract

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
        tracking_uri=tracking_uri,
        skipped=True,
    )
    markdown = render_markdown(summary)
    create_markdown_artifact(markdown, key="training-summary", description="training-pipeline run summary")
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

    from components.fingerprint import code_fingerprint, run_fingerprint
    from flows.runtime import prepare_environment

    logger = get_run_logger()
    root = Path(params_path).resolve().parent
    prepare_environment(root)
    extra = list(overrides or [])
    extra += [f"data.path={data_path}"] if data_path else []
    if contract:  # bring-your-own data: the contract names its own target
        from components.contract import load_contract

        extra += [f"validate.contract={Path(contract).resolve()}", f"data.target={load_contract(contract).target}"]
    settings = load_settings(params_path, extra)
    params, target, name = settings.as_params(), settings.data.target, settings.promote.registered_model
    dataset = (root / settings.data.path).resolve()
    contract_path = str((root / settings.validate_.contract).resolve()) if settings.validate_.contract else None
    if contract_path and not contract:
        from components.contract import load_contract

        if (declared := load_contract(contract_path).target) != target:
            raise ConfigError(
                f"data.target is '{target}' but the contract {settings.validate_.contract} declares target '{declared}'"
            )
    tracking_uri = registry.configure_tracking(root)
    out_dir = Path(tempfile.mkdtemp(prefix="mlops-run-"))

    frame, md5 = load_dataset_task(dataset, contract_path)
    logger.info("dataset %s md5 %s: %d rows", settings.data.path, md5, len(frame))
    phash, code_hash = params_hash(params), code_fingerprint(["components", "flows.training"])
    fingerprint = run_fingerprint(md5, phash, code_hash)
    done = registry.find_completed(name, fingerprint)
    if done is not None and not force:
        return _skipped(name, done, fingerprint, md5, settings.data.path, tracking_uri)
    with mlflow.start_run(run_name="training-pipeline") as parent:
        run_id, commit = parent.info.run_id, git_commit(root)
        mlflow.set_tags(
            {
                "dataset_md5": md5,
                "git_commit": commit,
                "params_hash": phash,
                "code_hash": code_hash,
                "fingerprint": fingerprint,
            }
        )
        mlflow.log_dict(params, "params.json")
        reference, reference_note = reference_task(name, root, frame, md5, settings, contract_path)
        logger.info("drift reference: %s", reference_note)
        try:
            report, frame, report_html = validate_task(frame, contract_path, target, reference, out_dir)
        finally:
            if (out_dir / "validation_report.html").exists():
                mlflow.log_artifacts(str(out_dir), "validation")
        report_uri = f"{mlflow.get_artifact_uri('validation')}/validation_report.html"
        splits = data_mod.split(frame, target, settings.data.test_size, settings.data.val_size, settings.data.seed)
        logger.info("split %s", splits.sizes())

        models: dict[str, TrainedModel] = {}
        results: dict[str, EvalResult] = {}
        for cand, spec in settings.train.enabled().items():
            models[cand] = train_task(
                cand,
                spec.model_dump(),
                splits.train,
                target,
                settings.train.seed,
                settings.evaluate.decision_threshold,
            )
            results[cand] = evaluate_task(models[cand], splits.val, target, "val")
            logger.info(
                "candidate %s: val %s %.4f",
                cand,
                settings.evaluate.primary_metric,
                results[cand].metrics[settings.evaluate.primary_metric],
            )
        example = splits.train.drop(columns=[target])
        logged = {c: log_candidate_task(run_id, models[c], results[c], example) for c in models}
        best = choose_best(list(results.values()), settings.evaluate.primary_metric)
        model = models[best.candidate]

        assessment = assess_task(model, splits.test, settings, out_dir)
        mlflow.log_metrics({f"test_{k}": v for k, v in assessment.metrics.items()})
        mlflow.log_artifacts(str(out_dir / "plots"), "plots")
        champion_version, champ_proba = champion_task(name, splits.test, target)
        decision = gate_task(settings, assessment, champion_version, champ_proba, splits.test)
        logger.info("gate: %s", decision.reason)

        child_run_id, model_uri = logged[best.candidate]
        with mlflow.start_run(run_id=child_run_id, nested=True):
            mlflow.log_metrics({f"test_{k}": v for k, v in assessment.metrics.items()})
        tags = lineage_tags(
            dataset_md5=md5,
            dataset_path=settings.data.path,
            git=commit,
            params_hash=phash,
            candidate=model.name,
            family=model.family,
        )
        tags |= {
            "pipeline_run_id": run_id,
            "code_hash": code_hash,
            "fingerprint": fingerprint,
            "validation": "passed" + (f" with {len(report.warnings())} warnings" if report.warnings() else ""),
            "validation_report": report_uri,
            "decision": "promote" if decision.promote else "keep",
            "decision_reason": decision.reason[:500],
        } | decision.to_tags()
        version = register_task(model_uri, name, child_run_id, tags)
        mlflow.log_dict(decision.to_dict(), "promotion_decision.json")

        bento_tag, aliases, notes = None, [], []
        if decision.promote:
            metadata = {
                "model_version": version.version,
                "dataset_md5": md5,
                "git_commit": commit,
                "params_hash": phash,
                "candidate": model.name,
                "decision": "promote",
            }
            bento_tag = package_task(
                settings,
                version.version,
                metadata,
                _request_schema(frame, model.feature_columns, contract_path),
                root,
            )
            registry.set_version_tags(name, version.version, {"bento_tag": bento_tag})
            outcome = promote_task(name, version.version, champion_version, decision.reason, root)
            if outcome.promoted:
                aliases.append("champion")
            else:
                notes.append(outcome.reason)
                registry.set_version_tags(
                    name, version.version, {"decision": "keep", "decision_reason": outcome.reason}
                )
        elif all(t["passed"] for t in decision.thresholds.values()) and champion_version is not None:
            from components.promotion import mark_challenger

            mark_challenger(name, version.version, lock_dir=root / ".mlops")
            aliases.append("challenger")

        registry.set_version_tags(name, version.version, {"completed": "true"})
        summary = RunSummary(
            dataset_path=settings.data.path,
            dataset_md5=md5,
            n_rows=len(frame),
            split_sizes=splits.sizes(),
            validation=f"{tags['validation']}; drift vs {reference_note} (report: {report_uri})",
            candidates={k: v.metrics for k, v in results.items()},
            chosen=best.candidate,
            test_metrics=assessment.metrics,
            registered_model=name,
            version=version.version,
            aliases=aliases,
            bento_tag=bento_tag,
            decision=decision.reason,
            tracking_uri=tracking_uri,
            run_id=run_id,
            notes=notes,
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
