"""Names the whole pipeline shares, each defined once: aliases, registry tag keys and values, metrics.

Tag values and alias names are what users see in the MLflow UI and script against: change none of
them without a migration.
"""

from __future__ import annotations

# Aliases of a registered model (never stages). `champion` is promote.alias's default.
ALIAS_CHAMPION = "champion"  # what serves
ALIAS_PREVIOUS = "previous-champion"  # where rollback goes
ALIAS_CHALLENGER = "challenger"  # passed the thresholds, lost to the champion

# Model-version tags: lineage
TAG_DATASET_MD5 = "dataset_md5"
TAG_DATASET_PATH = "dataset_path"
TAG_GIT_COMMIT = "git_commit"
TAG_PARAMS_HASH = "params_hash"
TAG_CODE_HASH = "code_hash"
TAG_FINGERPRINT = "fingerprint"  # dataset md5 + params + code: a finished version with it is not retrained
TAG_CANDIDATE = "candidate"
TAG_FAMILY = "family"
TAG_TASK = "task"  # binary | multiclass | regression (components.model.tasks)
TAG_PRIMARY_METRIC = "primary_metric"  # the metric the run chose candidates and gated by
TAG_PIPELINE_RUN = "pipeline_run_id"
TAG_DRIVER = "driver"  # prefect | dvc
# Model-version tags: what happened to it
TAG_VALIDATION = "validation"
TAG_VALIDATION_REPORT = "validation_report"
TAG_DECISION = "decision"
TAG_DECISION_REASON = "decision_reason"
TAG_BENTO = "bento_tag"
TAG_INFRA = "infra_validation"
TAG_COMPLETED = "completed"  # set last: a version without it belongs to a run that did not finish
TAG_ERROR = "error"  # on a FAILED MLflow run: why

# Values of TAG_DECISION. `promote` only while the version holds the alias: a champion that another
# version replaces becomes `replaced`, one that a rollback moves away from becomes `rolled_back`.
DECISION_PROMOTE, DECISION_KEEP, DECISION_PENDING, DECISION_FAILED = "promote", "keep", "pending", "failed"
DECISION_REPLACED, DECISION_ROLLED_BACK = "replaced", "rolled_back"

# Every metric the pipeline computes, and whether higher is better (errors and losses are lower-is-better).
METRIC_DIRECTIONS: dict[str, bool] = {
    # binary classification
    "roc_auc": True,
    "pr_auc": True,
    "f1": True,
    "accuracy": True,
    "balanced_accuracy": True,
    "log_loss": False,
    "brier": False,
    # multiclass classification (accuracy, balanced_accuracy and log_loss as above)
    "f1_macro": True,
    "f1_weighted": True,
    "roc_auc_ovr": True,  # macro average of one-vs-rest ROC AUC
    # regression
    "rmse": False,
    "mae": False,
    "r2": True,
    "mape": False,  # only when no target is zero
}
# Metrics per task: every one is computed and logged; a primary metric must be one of its task's.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "pr_auc", "f1", "accuracy", "balanced_accuracy", "log_loss", "brier"),
    "multiclass": ("accuracy", "balanced_accuracy", "f1_macro", "f1_weighted", "log_loss", "roc_auc_ovr"),
    "regression": ("rmse", "mae", "r2", "mape"),
}
# The metrics a run may choose and gate on, per task (a primary metric must rank models on its own).
PRIMARY_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "pr_auc", "f1", "accuracy", "balanced_accuracy", "log_loss", "brier"),
    "multiclass": ("f1_macro", "accuracy", "balanced_accuracy", "f1_weighted", "roc_auc_ovr", "log_loss"),
    "regression": ("rmse", "mae", "r2", "mape"),
}
# evaluate.primary_metric: null means the task's first primary metric.
DEFAULT_PRIMARY_METRIC = {task: metrics[0] for task, metrics in PRIMARY_METRICS.items()}
ALL_PRIMARY_METRICS = tuple(dict.fromkeys(m for metrics in PRIMARY_METRICS.values() for m in metrics))


def higher_is_better(metric: str) -> bool:
    """Direction of ``metric``; unknown metrics count as higher-is-better, as scores usually are."""
    return METRIC_DIRECTIONS.get(metric, True)
