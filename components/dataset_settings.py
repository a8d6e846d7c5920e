"""Settings that belong to a dataset, not to the pipeline: resolved from its contract.

The registered model's name, the service name, the task, the primary metric, the absolute
thresholds, the slices and the behaviour tests only make sense for one dataset, so they live in
the dataset's contract (its ``name``, ``task`` and ``evaluation`` section). ``params.yaml`` leaves
them null; a value set there (or with ``--set``) still wins, for users who want one params file
per dataset. The task itself comes from the contract only (a run without one guesses it from the
data), and every setting must fit it: the primary metric, the thresholds, the candidates' families.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from components.config import ConfigError, Settings, SliceSettings, TrainSettings
from components.model.tasks import BINARY, MULTICLASS, REGRESSION, TASKS
from components.training.candidate_settings import FAMILY_TASKS, IMAGE_FAMILIES
from components.vocabulary import DEFAULT_PRIMARY_METRIC, PRIMARY_METRICS, TASK_METRICS

if TYPE_CHECKING:
    from components.data.contract import Contract


def service_name_for(model_name: str) -> str:
    """A BentoML service name for a registered model name: lowercase letters, digits, - and _."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", model_name.lower()).strip("-_")
    return slug or "model"


def model_name(settings: Settings, contract: Contract | None) -> str:
    """``promote.registered_model`` when set, else the contract's name."""
    if settings.promote.registered_model:
        return settings.promote.registered_model
    if contract is None:
        raise ConfigError(
            "promote.registered_model is null and no contract is configured (validate.contract) to name the "
            "model: set one of them"
        )
    return contract.name


def task_of(contract: Contract | None, task: str | None = None) -> str:
    """The run's task: the contract's, else ``task`` (a run without a contract guesses it), else binary."""
    if contract is not None:
        return contract.task
    if task is not None and task not in TASKS:
        raise ConfigError(f"task: {task!r} is not one of {', '.join(TASKS)}")
    return task or BINARY


def resolve(settings: Settings, contract: Contract | None, task: str | None = None) -> Settings:
    """``settings`` with every dataset-specific value filled in from ``contract`` where params left it null.

    The task is :func:`task_of` ``(contract, task)``. ``evaluate.primary_metric`` null becomes the
    contract's ``evaluation.primary_metric``, else the task's default; a candidate whose ``tasks``
    leave the task out is disabled. A primary metric, threshold or family that does not fit the task
    is a ConfigError naming the key.
    """
    task = task_of(contract, task)
    name = model_name(settings, contract)
    evaluation: dict[str, Any] = dict(contract.evaluation) if contract is not None else {}
    ev = settings.evaluate
    where = f"contract '{contract.name}' evaluation" if contract is not None else "params"
    try:
        slices = ev.slices if ev.slices is not None else SliceSettings(**(evaluation.get("slices") or {}))
    except ValueError as err:
        raise ConfigError(f"{where}.slices: {err}") from None
    thresholds = ev.thresholds if ev.thresholds is not None else dict(evaluation.get("thresholds") or {})
    _check_thresholds(thresholds, task, "evaluate" if ev.thresholds is not None else where)
    evaluate = ev.model_copy(
        update={
            "primary_metric": _primary_metric(ev.primary_metric, evaluation.get("primary_metric"), task, where),
            "thresholds": thresholds,
            "slices": slices,
            "behaviour": ev.behaviour if ev.behaviour is not None else list(evaluation.get("behaviour") or []),
        }
    )
    promote = settings.promote.model_copy(update={"registered_model": name})
    service = settings.package.service_name or service_name_for(name)
    package = settings.package.model_copy(update={"service_name": service})
    train = candidates_for_data(candidates_for_task(settings.train, task), contract)
    return settings.model_copy(update={"evaluate": evaluate, "promote": promote, "package": package, "train": train})


def _primary_metric(from_params: str | None, from_contract: str | None, task: str, where: str) -> str:
    metric = from_params or from_contract or DEFAULT_PRIMARY_METRIC[task]
    if metric not in PRIMARY_METRICS[task]:
        key = "evaluate.primary_metric" if from_params else f"{where}.primary_metric"
        raise ConfigError(
            f"{key}: {metric!r} does not rank {task} models; choose one of {', '.join(PRIMARY_METRICS[task])} "
            f"(null: {DEFAULT_PRIMARY_METRIC[task]})"
        )
    return metric


def _check_thresholds(thresholds: dict[str, float], task: str, where: str) -> None:
    """A threshold on a metric the task never computes would fail every model: refuse it now."""
    for metric in thresholds:
        if metric not in TASK_METRICS[task]:
            raise ConfigError(
                f"{where}.thresholds.{metric}: not a metric of {task} models ({', '.join(TASK_METRICS[task])})"
            )


def candidates_for_task(train: TrainSettings, task: str) -> TrainSettings:
    """``train`` with the candidates that sit out ``task`` (their ``tasks`` leave it out) disabled.

    A candidate without ``tasks`` claims every task: an enabled one whose family cannot learn this
    one is refused rather than silently dropped, as is a ``tasks`` entry its family cannot learn.
    """
    candidates = {}
    for name, spec in train.candidates.items():
        key, learns = f"train.candidates.{name}", FAMILY_TASKS[spec.family]
        if spec.tasks is not None:
            wrong = [t for t in spec.tasks if t not in learns]
            if wrong:
                raise ConfigError(f"{key}.tasks: {spec.family} cannot learn {', '.join(wrong)} "
                                  f"(it learns {', '.join(learns)})")  # fmt: skip
            if task not in spec.tasks and spec.enabled:
                spec = spec.model_copy(update={"enabled": False})
        elif spec.enabled and task not in learns:
            raise ConfigError(
                f"{key}.family: {spec.family} cannot learn {task} models (it learns {', '.join(learns)}); "
                f"add tasks: [{', '.join(learns)}] to {key} so it sits out {task} runs, or set enabled: false"
            )
        candidates[name] = spec
    if not any(spec.enabled for spec in candidates.values()):
        families = ", ".join(f for f, tasks in FAMILY_TASKS.items() if task in tasks)
        raise ConfigError(f"train.candidates: no enabled candidate trains {task} models; "
                          f"enable one of a family that does ({families})")  # fmt: skip
    return train.model_copy(update={"candidates": candidates})


def is_image_contract(contract: Any) -> bool:
    return getattr(contract, "kind", "table") == "images"


def candidates_for_data(train: TrainSettings, contract: Any) -> TrainSettings:
    """``train`` with each enabled candidate checked against the kind of data: image families learn from an
    image contract's folder (and get its image section: what they read pixels as), the others from tables."""
    images = is_image_contract(contract)
    candidates = {}
    for name, spec in train.candidates.items():
        if spec.enabled and (spec.family in IMAGE_FAMILIES) != images:
            learns = "images" if spec.family in IMAGE_FAMILIES else "tables"
            data = "a folder of images (an image contract)" if images else "a table"
            families = IMAGE_FAMILIES if images else tuple(f for f in FAMILY_TASKS if f not in IMAGE_FAMILIES)
            raise ConfigError(f"train.candidates.{name}.family: {spec.family} learns from {learns}, and this run's "
                              f"data is {data}; use one of {', '.join(families)}, or set enabled: false")  # fmt: skip
        if images and spec.family in IMAGE_FAMILIES:
            read_as = {"width": contract.width, "height": contract.height, "mode": contract.mode,
                       "resize": contract.resize}  # fmt: skip
            spec = spec.model_copy(update={"image": read_as})
        candidates[name] = spec
    return train.model_copy(update={"candidates": candidates})


def load_any_contract(path: str | Path) -> Any:
    """The contract at ``path``: a table's ``Contract``, or an ``ImageContract`` when it says ``kind: images``."""
    from components.data.contract import contract_from_dict, read_contract_yaml
    from components.images.contract import contract_kind, image_contract_from_dict

    data = read_contract_yaml(path)
    return image_contract_from_dict(data) if contract_kind(data) == "images" else contract_from_dict(data)


def check_target_fits(task: str, values: Any, target: str, *, where: str) -> None:
    """Refuse, before any training, a target that does not fit the task; the message names ``task``.

    ``values`` are the target's values (a column, or a contract's labels): binary needs exactly two
    distinct labels, multiclass three or more, regression numbers with more than two distinct values.
    """
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    series = series.dropna()
    distinct = list(pd.unique(series))
    n = len(distinct)
    shown = ", ".join(map(str, sorted(distinct, key=str)[:10])) + (", ..." if n > 10 else "")
    problem = hint = None
    if task == REGRESSION:
        if pd.api.types.is_bool_dtype(series):
            not_numbers = series
        else:
            numbers = series if pd.api.types.is_numeric_dtype(series) else pd.to_numeric(series, errors="coerce")
            not_numbers = series[numbers.isna()]
        if len(not_numbers):
            problem = f"holds values that are not numbers (e.g. {not_numbers.iloc[0]!r})"
            hint = "set the contract's task: binary or multiclass"
        elif n <= 2:
            problem, hint = f"has only {n} distinct value(s) ({shown})", "set the contract's task: binary"
    elif task == BINARY and n != 2:
        problem = f"has {n} distinct label(s) ({shown}); binary needs exactly two"
        hint = "set the contract's task: multiclass" if n > 2 else "the data needs both labels"
    elif task == MULTICLASS and n < 3:
        problem = f"has {n} distinct label(s) ({shown}); multiclass needs three or more"
        hint = "set the contract's task: binary" if n == 2 else "the data needs three labels or more"
    elif task not in TASKS:
        raise ConfigError(f"{where}: task {task!r} is not one of {', '.join(TASKS)}")
    if problem:
        raise ConfigError(f"{where}: task is {task} but target '{target}' {problem}: {hint}")


def load_configured_contract(settings: Settings, root: Path) -> Contract | None:
    """The contract ``validate.contract`` names (relative to the params file's folder), or None."""
    if not settings.validate_.contract:
        return None
    return load_any_contract((root / settings.validate_.contract).resolve())


def default_model_name(params_path: str | Path) -> str:
    """The model a command acts on when no ``--model`` is given: the params' model, else its contract's name."""
    from components.config import load_settings

    settings = load_settings(params_path)
    if settings.promote.registered_model:
        return settings.promote.registered_model
    return model_name(settings, load_configured_contract(settings, Path(params_path).resolve().parent))
