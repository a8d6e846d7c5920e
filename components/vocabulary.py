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

# Metrics of binary classification, and whether higher is better.
METRIC_DIRECTIONS: dict[str, bool] = {
    "roc_auc": True,
    "pr_auc": True,
    "f1": True,
    "accuracy": True,
    "balanced_accuracy": True,
    "log_loss": False,
    "brier": False,
}
# The metrics a run may choose and gate on (a primary metric must rank models on its own).
PRIMARY_METRICS = ("roc_auc", "pr_auc", "f1", "accuracy", "balanced_accuracy")


def higher_is_better(metric: str) -> bool:
    """Direction of ``metric``; unknown metrics count as higher-is-better, as scores usually are."""
    return METRIC_DIRECTIONS.get(metric, True)
