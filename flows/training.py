"""The `training-pipeline` Prefect flow: a recipe over the components.

validate → split → train candidates → choose on validation → evaluate on test
→ register → package → promote. Each task is a thin wrapper; I/O tasks retry.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from components import data as data_mod
from components import registry
from components.config import Settings, load_settings, params_hash
from components.evaluate import EvalResult, choose_best, evaluate, failed_thresholds
from components.lineage import git_commit, lineage_tags
from components.model import TrainedModel
from components.summary import RunSummary, render_markdown

log = logging.getLogger(__name__)


@task(name="load-dataset")
def load_dataset_task(path: Path, contract_path: str | None) -> tuple[Any, str]:
    from components.contract import load_contract, read_with_contract

    frame = (
        read_with_contract(path, load_contract(contract_path)) if contract_path else data_mod.load_dataset(path)
    )
    return frame, data_mod.file_md5(path)


@task(name="validate-dataset")
def validate_task(frame, contract_path: str | None, target: str, out_dir: Path):
    from components.contract import load_contract
    from components.report_html import write_report
    from components.validation import DataRejectedError, basic_contract, validate_frame

    contract = load_contract(contract_path) if contract_path else basic_contract(frame, target)
    report, accepted = validate_frame(frame, contract, quarantine_path=out_dir / "quarantine.csv")
    html = write_report(report, out_dir, title=f"Validation of {len(frame)} rows")
    if not report.success:
        raise DataRejectedError(report, html)
    return report, accepted, html


@task(name="train-candidate")
def train_task(name: str, spec: dict[str, Any], train_frame, target: str, seed: int, threshold: float):
    from components.train import train_candidate

    X, y = data_mod.features_and_target(train_frame, target)
    return train_candidate(name, spec["family"], spec, X, y, seed=seed, threshold=threshold)


@task(name="evaluate-candidate")
def evaluate_task(model: TrainedModel, frame, target: str, split: str) -> EvalResult:
    return evaluate(model, frame, target, split)


@task(name="log-candidate", retries=2, retry_delay_seconds=[2, 10])
def log_candidate_task(parent_run_id: str, model: TrainedModel, val: EvalResult, example) -> str:
    import mlflow

    with mlflow.start_run(run_name=model.name, parent_run_id=parent_run_id, nested=True):
        mlflow.log_params({"family": model.family, **model.params})
        mlflow.log_metrics({f"val_{k}": v for k, v in val.metrics.items()})
        return registry.log_model(model, example)


@task(name="register-model", retries=2, retry_delay_seconds=[2, 10])
def register_task(model_uri: str, name: str, run_id: str, tags: dict[str, str]):
    return registry.register(model_uri, name, run_id, tags)


@task(name="build-bento", retries=1, retry_delay_seconds=5)
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


def _request_schema(frame, feature_columns: list[str], contract_path: str | None) -> dict:
    from components.request_schema import schema_from_frame

    if contract_path:
        from components.contract import load_contract
        from components.request_schema import schema_from_contract

        return schema_from_contract(load_contract(contract_path), feature_columns)
    return schema_from_frame(frame, feature_columns)


@flow(name="training-pipeline")
def training_pipeline(
    params_path: str = "params.yaml",
    overrides: list[str] | None = None,
    data_path: str | None = None,
    contract: str | None = None,
) -> dict[str, Any]:
    """Train, evaluate, register, package and (if it earns it) promote one model."""
    import mlflow

    logger = get_run_logger()
    root = Path(params_path).resolve().parent
    extra = list(overrides or [])
    if data_path:
        extra.append(f"data.path={data_path}")
    if contract:
        extra.append(f"validate.contract={contract}")
    settings = load_settings(params_path, extra)
    params = settings.as_params()
    dataset = (root / settings.data.path).resolve()
    contract_path = str((root / settings.validate_.contract).resolve()) if settings.validate_.contract else None
    tracking_uri = registry.configure_tracking(root)

    frame, md5 = load_dataset_task(dataset, contract_path)
    logger.info("dataset %s md5 %s: %d rows", dataset.name, md5, len(frame))
    with mlflow.start_run(run_name="training-pipeline") as parent:
        run_id = parent.info.run_id
        out_dir = Path(tempfile.mkdtemp(prefix="mlops-run-"))
        phash = params_hash(params)
        commit = git_commit(root)
        mlflow.set_tags({"dataset_md5": md5, "git_commit": commit, "params_hash": phash})
        mlflow.log_dict(params, "params.json")
        try:
            report, frame, report_html = validate_task(frame, contract_path, settings.data.target, out_dir)
        finally:
            if (out_dir / "validation_report.html").exists():
                mlflow.log_artifacts(str(out_dir), "validation")
        splits = data_mod.split(
            frame, settings.data.target, settings.data.test_size, settings.data.val_size, settings.data.seed
        )
        results: dict[str, EvalResult] = {}
        models: dict[str, TrainedModel] = {}
        for name, spec in settings.train.enabled().items():
            logger.info("training candidate %s (%s)", name, spec.family)
            models[name] = train_task(
                name, spec.model_dump(), splits.train, settings.data.target,
                settings.train.seed, settings.evaluate.decision_threshold,
            )
            results[name] = evaluate_task(models[name], splits.val, settings.data.target, "val")
            logger.info("%s: val %s %.4f", name, settings.evaluate.primary_metric,
                        results[name].metrics[settings.evaluate.primary_metric])
        best = choose_best(list(results.values()), settings.evaluate.primary_metric)
        model = models[best.candidate]
        test = evaluate_task(model, splits.test, settings.data.target, "test")
        mlflow.log_metrics({f"test_{k}": v for k, v in test.metrics.items()})
        example = splits.train.drop(columns=[settings.data.target])
        model_uri = log_candidate_task(run_id, model, results[best.candidate], example)

        failures = failed_thresholds(test.metrics, settings.evaluate.thresholds)
        tags = lineage_tags(
            dataset_md5=md5, dataset_path=settings.data.path, git=commit, params_hash=phash,
            candidate=model.name, family=model.family,
        )
        tags["validation"] = "passed" + (f" with {len(report.warnings())} warnings" if report.warnings() else "")
        tags["decision"] = "promote" if not failures else "keep"
        tags["decision_reason"] = "all thresholds hold" if not failures else "; ".join(failures)[:500]
        name = settings.promote.registered_model
        version = register_task(model_uri, name, run_id, tags)
        metadata = {
            "model_version": version.version, "dataset_md5": md5, "git_commit": commit,
            "params_hash": phash, "candidate": model.name,
        }
        schema = _request_schema(frame, model.feature_columns, contract_path)
        bento_tag = package_task(settings, version.version, metadata, schema, root)
        registry.set_version_tags(name, version.version, {"bento_tag": bento_tag})
        aliases: list[str] = []
        if not failures:
            registry.set_alias(name, settings.promote.alias, version.version)
            aliases.append(settings.promote.alias)
        summary = RunSummary(
            dataset_path=settings.data.path, dataset_md5=md5, n_rows=len(frame),
            split_sizes=splits.sizes(), validation=tags["validation"] + f" (report: {report_html})",
            candidates={k: v.metrics for k, v in results.items()}, chosen=best.candidate,
            test_metrics=test.metrics, registered_model=name, version=version.version, aliases=aliases,
            bento_tag=bento_tag, decision=f"{tags['decision']}: {tags['decision_reason']}",
            tracking_uri=tracking_uri, run_id=run_id,
        )
        markdown = render_markdown(summary)
        mlflow.log_text(markdown, "summary.md")
        mlflow.log_dict(summary.to_dict(), "summary.json")
    create_markdown_artifact(markdown, key="training-summary", description="training-pipeline run summary")
    logger.info("chosen %s, registered %s v%s, aliases %s", best.candidate, name, version.version, aliases)
    return json.loads(json.dumps(summary.to_dict(), default=str)) | {"markdown": markdown}
