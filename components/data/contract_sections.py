"""Two parts of a data contract checked on their own: its task, and its ``evaluation`` section.

``components.data.contract`` calls both (this module never imports it back):

- the task against the labels and the target column: ``binary`` takes two labels, ``multiclass``
  three or more, ``regression`` none (and no class balance) and a numeric target. A contract written
  before contracts had a task gets one from its labels: more than two is multiclass.
- the evaluation section (what a model of the data must show: primary metric, thresholds, slices,
  behaviour tests) for shape and for metrics of the task; ``components.dataset_settings`` types the
  values and lets ``params.yaml`` override them.
"""

from __future__ import annotations

from typing import Any

from components.data.errors import ContractError
from components.model.tasks import BINARY, MULTICLASS, REGRESSION, TASKS
from components.vocabulary import ALL_PRIMARY_METRICS, PRIMARY_METRICS, TASK_METRICS

# The keys of a contract's `evaluation` section, in the order a written contract lists them.
EVALUATION_KEYS = ("primary_metric", "thresholds", "slices", "behaviour")


def task_from_labels(labels: list) -> str:
    """The task of a contract without ``task:`` (written before there was one): its labels decide."""
    return MULTICLASS if len(labels) > 2 else BINARY


def min_classes(task: str) -> int:
    """How many distinct labels the data of a classification task must show (rule: min_classes)."""
    return 3 if task == MULTICLASS else 2


def _shown(values: list) -> str:
    return ", ".join(map(str, values[:10])) + (", ..." if len(values) > 10 else "")


def check_task(contract: Any) -> None:
    """The contract's labels, class balance and target column fit its task; errors name the key.

    ``contract`` is a :class:`components.data.contract.Contract`, which calls this while it is built
    (typed loosely so that this module, below it, never imports it back).
    """
    task, labels = contract.task, list(contract.labels)
    if task not in TASKS:
        raise ContractError(f"task: {task!r} is not one of {', '.join(TASKS)}")
    if task == REGRESSION:
        if labels:
            raise ContractError(f"labels: a regression target has no labels (task: regression); got {_shown(labels)}")
        if contract.class_balance:
            raise ContractError("class_balance: a regression target has no classes to balance (task: regression)")
        target = contract.column(contract.target)
        if target is not None and not target.numeric:
            raise ContractError(
                f"columns.{target.name}.dtype: the target of a regression must be float or int, not {target.dtype}"
            )
    # Empty labels (a contract built in code) mean "any value": the min_classes rule still applies.
    elif task == BINARY and len(labels) > 2:
        raise ContractError(f"labels: task binary takes two labels, got {len(labels)} ({_shown(labels)}); "
                            "set task: multiclass")  # fmt: skip
    elif task == MULTICLASS and 0 < len(labels) < 3:
        raise ContractError(f"labels: task multiclass needs at least three labels, got {_shown(labels)}; "
                            "set task: binary")  # fmt: skip
    check_evaluation_task(contract.evaluation, task)


def check_evaluation_task(evaluation: dict[str, Any], task: str) -> None:
    """The section's primary metric ranks models of ``task`` and its thresholds are metrics of it."""
    metric = evaluation.get("primary_metric")
    if metric is not None and metric not in PRIMARY_METRICS[task]:
        raise ContractError(
            f"evaluation.primary_metric: {metric!r} does not rank {task} models; "
            f"choose one of {', '.join(PRIMARY_METRICS[task])} (or leave it out: {PRIMARY_METRICS[task][0]})"
        )
    for name in evaluation.get("thresholds") or {}:
        if name not in TASK_METRICS[task]:
            raise ContractError(
                f"evaluation.thresholds.{name}: not a metric of {task} models ({', '.join(TASK_METRICS[task])})"
            )


def parse_evaluation(data: Any, columns: list[str]) -> dict[str, Any]:
    """The contract's ``evaluation`` section, checked for shape (values are typed by the settings)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ContractError("evaluation: expected a mapping of primary_metric, thresholds, slices and behaviour")
    for key in data:
        if key not in EVALUATION_KEYS:
            raise ContractError(f"evaluation.{key}: unknown key; known: {', '.join(EVALUATION_KEYS)}")
    metric = data.get("primary_metric")
    if metric is not None and metric not in ALL_PRIMARY_METRICS:
        raise ContractError(f"evaluation.primary_metric: {metric!r} is not a known metric "
                            f"({', '.join(ALL_PRIMARY_METRICS)})")  # fmt: skip
    thresholds = data.get("thresholds") or {}
    if not isinstance(thresholds, dict) or not all(isinstance(v, int | float) for v in thresholds.values()):
        raise ContractError("evaluation.thresholds: expected a mapping of metric -> bound")
    slices = data.get("slices") or {}
    if not isinstance(slices, dict):
        raise ContractError("evaluation.slices: expected {columns: [...], min_size: N, bins: N}")
    unknown = [c for c in slices.get("columns") or [] if c not in columns]
    if unknown:
        names = ", ".join(map(str, unknown))
        raise ContractError(f"evaluation.slices.columns: {names} not among the contract's columns")
    behaviour = data.get("behaviour") or []
    if not isinstance(behaviour, list) or not all(isinstance(b, dict) for b in behaviour):
        raise ContractError("evaluation.behaviour: expected a list of behaviour tests")
    section = {"thresholds": dict(thresholds), "slices": dict(slices), "behaviour": list(behaviour)}
    # Only when given, so a contract without one reads and writes back unchanged.
    return {"primary_metric": metric, **section} if metric is not None else section
