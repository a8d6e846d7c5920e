"""Hyper-parameter search for one candidate, independent of where trials run.

Optuna proposes, the caller evaluates. Trials are asked in fixed-size batches
and told back in trial-number order, so the sampler sees the same history, and
so proposes the same values, whether the caller scores a batch one spec after
another or all at once on a Dask cluster. Only the validation split is used
here: the test split stays untouched until the chosen model is assessed.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from components.evaluation.metrics import EvalResult, evaluate
from components.model.trained import TrainedModel
from components.training.candidate_settings import SearchDimension
from components.training.families import train_candidate
from components.vocabulary import METRIC_DIRECTIONS

log = logging.getLogger(__name__)


class SearchFailedError(RuntimeError):
    """Every trial of a search failed; ``trials`` holds them with their reasons."""

    def __init__(self, candidate: str, trials: tuple[TrialRecord, ...]) -> None:
        reasons = sorted({t.reason or "no value" for t in trials})
        super().__init__(f"search for candidate '{candidate}': all {len(trials)} trials failed ({'; '.join(reasons)})")
        self.candidate = candidate
        self.trials = trials


@dataclass(frozen=True)
class TrialFailure:
    """What ``evaluate_batch`` returns for a spec that could not be scored."""

    reason: str

    @classmethod
    def from_exception(cls, err: BaseException) -> TrialFailure:
        return cls(f"{type(err).__name__}: {err}")


# What ``evaluate_batch`` returns per spec: the validation value, or a failure (None = failed, no reason).
TrialValue = float | TrialFailure | None


@dataclass(frozen=True)
class TrialRecord:
    number: int
    params: dict[str, Any]  # the sampled values only
    spec: dict[str, Any]  # the whole candidate spec the trial trained
    value: float | None
    state: str  # "complete" or "failed"
    reason: str | None = None


@dataclass(frozen=True)
class SearchResult:
    candidate: str
    trials: tuple[TrialRecord, ...]
    best_number: int
    best_spec: dict[str, Any]
    best_value: float

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``mlflow.log_dict`` (and JSON in general)."""
        return {
            "candidate": self.candidate,
            "best_number": self.best_number,
            "best_value": self.best_value,
            "best_spec": self.best_spec,
            "trials": [asdict(t) for t in self.trials],
        }


@dataclass(frozen=True)
class SearchSpace:
    """A candidate's ``search`` section as Optuna distributions, and the way back to spec values.

    Categorical dimensions are handed to Optuna as choice indices, so choices
    Optuna cannot store (lists such as ``hidden: [64, 32]``) work too.
    """

    dimensions: dict[str, SearchDimension]

    @classmethod
    def from_config(cls, space: Mapping[str, SearchDimension | Mapping[str, Any]]) -> SearchSpace:
        if not space:
            raise ValueError("a search space needs at least one dimension")
        dims = {k: v if isinstance(v, SearchDimension) else SearchDimension.model_validate(v) for k, v in space.items()}
        return cls(dims)

    def distributions(self) -> dict[str, Any]:
        return {name: _distribution(dim) for name, dim in self.dimensions.items()}

    def decode(self, sampled: Mapping[str, Any]) -> dict[str, Any]:
        """Optuna's sampled values as spec values (choice index -> choice)."""
        out = {}
        for name, dim in self.dimensions.items():
            value = sampled[name]
            out[name] = copy.deepcopy(dim.choices[value]) if dim.is_categorical else value
        return out


def _distribution(dim: SearchDimension):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if dim.is_categorical:
        return CategoricalDistribution(list(range(len(dim.choices))))
    if dim.type == "int":
        return IntDistribution(int(dim.low), int(dim.high), log=dim.log)
    return FloatDistribution(dim.low, dim.high, log=dim.log)


def _as_value(outcome: TrialValue) -> tuple[float | None, str | None]:
    """(value, failure reason): exactly one of them is None."""
    if isinstance(outcome, TrialFailure):
        return None, outcome.reason
    if outcome is None:
        return None, "no value returned"
    value = float(outcome)
    if not math.isfinite(value):
        return None, f"non-finite value {value}"
    return value, None


def _check_search_args(n_trials: int, batch_size: int) -> None:
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")


def _new_study(seed: int):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))


def _tell(study, trial, candidate: str, params: dict, spec: dict, outcome: TrialValue) -> TrialRecord:
    from optuna.trial import TrialState

    value, reason = _as_value(outcome)
    if value is None:
        trial.set_user_attr("fail_reason", reason)
        study.tell(trial, state=TrialState.FAIL)
        log.info("search %s trial %d %s: failed (%s)", candidate, trial.number, params, reason)
        return TrialRecord(trial.number, params, spec, None, "failed", reason)
    study.tell(trial, value)
    log.info("search %s trial %d %s: %.6f", candidate, trial.number, params, value)
    return TrialRecord(trial.number, params, spec, value, "complete")


def run_search(
    candidate: str,
    base_spec: Mapping[str, Any],
    space: Mapping[str, SearchDimension | Mapping[str, Any]],
    *,
    n_trials: int,
    batch_size: int,
    seed: int,
    evaluate_batch: Callable[[list[dict[str, Any]]], list[TrialValue]],
) -> SearchResult:
    """Search ``space`` around ``base_spec`` for the highest validation value.

    ``evaluate_batch`` gets up to ``batch_size`` full specs at once and must
    return one value per spec in the same order (higher is better; a
    ``TrialFailure`` or None marks a failed trial). It may score them in any
    order or in parallel; the result depends only on the values returned.
    The returned specs carry no ``search`` key. Ties go to the earliest trial.
    """
    _check_search_args(n_trials, batch_size)
    search_space = SearchSpace.from_config(space)
    distributions = search_space.distributions()
    base = {k: v for k, v in base_spec.items() if k != "search"}
    study = _new_study(seed)
    records: list[TrialRecord] = []
    while len(records) < n_trials:
        trials = [study.ask(distributions) for _ in range(min(batch_size, n_trials - len(records)))]
        params = [search_space.decode(t.params) for t in trials]
        specs = [{**base, **p} for p in params]
        outcomes = list(evaluate_batch(copy.deepcopy(specs)))
        if len(outcomes) != len(specs):
            raise ValueError(f"evaluate_batch returned {len(outcomes)} values for {len(specs)} specs")
        for trial, p, spec, outcome in zip(trials, params, specs, outcomes, strict=True):
            records.append(_tell(study, trial, candidate, p, spec, outcome))
    return _result(candidate, records)


def _result(candidate: str, records: list[TrialRecord]) -> SearchResult:
    done = [r for r in records if r.value is not None]
    if not done:
        raise SearchFailedError(candidate, tuple(records))
    best = max(done, key=lambda r: (r.value, -r.number))
    log.info("search %s: best trial %d of %d, value %.6f", candidate, best.number, len(records), best.value)
    return SearchResult(candidate, tuple(records), best.number, best.spec, best.value)


def search_value(result: EvalResult, metric: str) -> float:
    """The value a search maximises: ``metric`` itself, or its negative for lower-is-better metrics."""
    if metric not in METRIC_DIRECTIONS:
        raise ValueError(f"unknown metric {metric!r} (known: {', '.join(METRIC_DIRECTIONS)})")
    value = result.metrics[metric]
    return value if METRIC_DIRECTIONS[metric] else -value


def fit_and_score(
    name: str,
    spec: Mapping[str, Any],
    train_frame: pd.DataFrame,
    val_frame: pd.DataFrame,
    target: str,
    *,
    seed: int,
    threshold: float,
    primary_metric: str,
    task: str = "binary",
) -> tuple[TrainedModel, EvalResult]:
    """Train one spec for ``task`` on the train split and score it on the validation split (one search trial).

    The validation features also drive early stopping when the spec asks for
    it, which is why this takes the validation frame and never the test one.
    """
    if primary_metric not in METRIC_DIRECTIONS:
        raise ValueError(f"unknown primary_metric {primary_metric!r} (known: {', '.join(METRIC_DIRECTIONS)})")
    if "family" not in spec:
        raise ValueError(f"candidate '{name}': spec has no 'family' key")
    model = train_candidate(
        name,
        spec["family"],
        dict(spec),
        train_frame.drop(columns=[target]),
        train_frame[target],
        seed=seed,
        threshold=threshold,
        task=task,
        X_val=val_frame.drop(columns=[target]),
        y_val=val_frame[target],
    )
    result = evaluate(model, val_frame, target, "val")
    log.info("candidate %s: val %s %.4f", name, primary_metric, result.metrics[primary_metric])
    return model, result


# What one fit returns to ``choose_candidate``: the model and its validation result, or why it failed.
FitOutcome = tuple[TrainedModel, EvalResult] | BaseException


@dataclass(frozen=True)
class CandidateOutcome:
    """A candidate's chosen model: its plain spec, or the best trial of its search."""

    model: TrainedModel
    result: EvalResult
    search: SearchResult | None = None
    trial_results: dict[int, EvalResult] | None = None  # validation results per completed trial


def choose_candidate(
    name: str,
    spec: Mapping[str, Any],
    *,
    n_trials: int,
    batch_size: int,
    seed: int,
    primary_metric: str,
    fit_batch: Callable[[list[dict[str, Any]]], list[FitOutcome]],
) -> CandidateOutcome:
    """Fit ``spec`` as it is, or search its space when it has one and ``n_trials`` > 0.

    ``fit_batch`` fits specs (sequentially in the DVC stage, as Prefect tasks in the
    flow, possibly on Dask) and returns one outcome per spec in order. The Prefect
    flow and ``dvc repro`` both call this, which is why they choose the same model.
    """
    space = spec.get("search")
    if not space or n_trials == 0:
        outcome = fit_batch([{k: v for k, v in spec.items() if k != "search"}])[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return CandidateOutcome(*outcome)
    results: list[EvalResult | None] = []  # index = trial number: trials are asked and fitted in order
    best: dict[str, Any] = {}

    def evaluate_batch(specs: list[dict[str, Any]]) -> list[TrialValue]:
        values: list[TrialValue] = []
        for outcome in fit_batch(specs):
            if isinstance(outcome, BaseException):
                results.append(None)
                values.append(TrialFailure.from_exception(outcome))
                continue
            model, result = outcome
            value = search_value(result, primary_metric)
            if math.isfinite(value) and (not best or value > best["value"]):  # ties: the earliest trial
                best.update(number=len(results), value=value, model=model, result=result)
            results.append(result)
            values.append(value)
        return values

    search = run_search(
        name, spec, space, n_trials=n_trials, batch_size=batch_size, seed=seed, evaluate_batch=evaluate_batch
    )
    assert best["number"] == search.best_number, "trial numbering out of step with the sampler"
    trial_results = {n: r for n, r in enumerate(results) if r is not None}
    return CandidateOutcome(best["model"], best["result"], search, trial_results)
