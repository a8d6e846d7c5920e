"""Model behaviour tests: invariance, direction and minimum functionality (golden rows).

Configured by plain dicts from ``params.yaml`` or the contract; run against any ``predict`` that maps a
feature frame to the model's scores (components.model.tasks: positive-class probabilities, class
probabilities or predicted values). Every spec is checked before the model is called, so a typo fails
fast and names the test and the key.

Per task:

- invariance: classifiers may flip their answer on at most ``max_flip_rate`` of rows; a regression's
  value may move by more than ``tolerance`` on at most ``max_fraction`` of rows (default 0).
- directional: the score moves as ``expect``\\s when ``column`` is shifted by ``delta``; a multiclass
  model names the ``class`` whose probability is meant.
- golden: ``expected`` holds a class label per row (binary also 0/1 for negative/positive, as before)
  or, for regression, a number per row, met within ``tolerance``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from components.evaluation.behaviour_specs import check_spec
from components.model.tasks import BINARY, MULTICLASS, REGRESSION, check_task

_TIE = 1e-9  # a score change this small counts as "unchanged" for directional tests

Predict = Callable[[pd.DataFrame], np.ndarray]


@dataclass(frozen=True)
class BehaviourResult:
    name: str
    kind: str
    passed: bool
    detail: str
    numbers: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Model:
    """What the tests need to know about the model besides ``predict``."""

    predict: Predict
    task: str
    classes: list[Any]
    threshold: float

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        scores = np.asarray(self.predict(frame), dtype=np.float64)
        return scores if self.task == MULTICLASS else scores.reshape(-1)

    def answers(self, scores: np.ndarray) -> np.ndarray:
        """Class index per row (binary by the threshold, multiclass the most probable class)."""
        if self.task == MULTICLASS:
            return np.argmax(scores, axis=1)
        return (scores >= self.threshold).astype(int)


def _perturbed(frame: pd.DataFrame, column: str, perturbation: Mapping[str, Any]) -> pd.DataFrame:
    ((op, value),) = perturbation.items()
    if op == "shift":
        new = frame[column] + value
    elif op == "scale":
        new = frame[column] * value
    else:
        new = pd.Series([value]).repeat(len(frame)).set_axis(frame.index)  # dtype as inferred for [value]
    return frame.assign(**{column: new})  # a new frame; the input is left as it was


def _invariance(spec, model: _Model, frame: pd.DataFrame, base: np.ndarray):
    after = model.scores(_perturbed(frame, spec["column"], spec["perturbation"]))
    ((op, value),) = spec["perturbation"].items()
    change = np.abs(after - base)
    if model.task == REGRESSION:
        over = int(np.sum(change > spec["tolerance"]))
        share, allowed = over / len(base), spec.get("max_fraction", 0.0)
        detail = (
            f"{spec['column']} {op} {value!r}: the prediction moves by more than {spec['tolerance']!r} on "
            f"{share:.2%} of rows ({over}/{len(base)}); allowed at most {allowed:.2%}"
        )
        numbers = {"fraction_over": share, "n_over": over, "n_rows": len(base), "max_fraction": allowed}
        numbers |= {"tolerance": spec["tolerance"], "max_abs_change": float(change.max())}
        return share <= allowed, detail, numbers | {"mean_abs_change": float(change.mean())}
    flipped = int(np.sum(model.answers(base) != model.answers(after)))
    rate = flipped / len(base)
    passed = rate <= spec["max_flip_rate"]
    detail = (
        f"{spec['column']} {op} {value!r}: predictions flip on {rate:.2%} of rows ({flipped}/{len(base)}); "
        f"allowed at most {spec['max_flip_rate']:.2%}"
    )
    numbers = {"flip_rate": rate, "n_flipped": flipped, "n_rows": len(base)}
    numbers |= {
        "max_flip_rate": spec["max_flip_rate"],
        # per row: binary the probability, multiclass the largest change of any class's probability
        "mean_abs_change": float(np.mean(change if change.ndim == 1 else change.max(axis=1))),
    }
    return passed, detail, numbers


def _directional(spec, model: _Model, frame: pd.DataFrame, base: np.ndarray):
    after = model.scores(_perturbed(frame, spec["column"], {"shift": spec["delta"]}))
    what = "prediction" if model.task == REGRESSION else "probability"
    if model.task == MULTICLASS:
        index = spec["class_index"]
        base, after = base[:, index], after[:, index]
        what = f"probability of class {model.classes[index]!r}"
    change = after - base
    ok = change >= -_TIE if spec["expect"] == "increase" else change <= _TIE
    fraction = float(np.mean(ok))
    passed = fraction >= spec["min_fraction"]
    detail = (
        f"{spec['column']} shifted by {spec['delta']!r}: {what} moves to {spec['expect']} (or stays) on "
        f"{fraction:.2%} of rows; required at least {spec['min_fraction']:.2%}"
    )
    numbers = {
        "fraction": fraction,
        "min_fraction": spec["min_fraction"],
        "mean_change": float(np.mean(change)),
    }
    return passed, detail, numbers


def _golden_frame(frame: pd.DataFrame, rows: list[Mapping[str, Any]]) -> pd.DataFrame:
    """Golden rows as a frame with the input's columns; features a row leaves out take a typical
    value from ``frame`` (median for numbers, most frequent value otherwise)."""
    given = pd.DataFrame(list(rows), columns=list(frame.columns))
    for column in frame.columns:
        if given[column].isna().any():
            source = frame[column]
            numeric = pd.api.types.is_numeric_dtype(source) and not pd.api.types.is_bool_dtype(source)
            typical = source.median() if numeric else source.mode(dropna=True).iloc[0]
            given[column] = given[column].where(given[column].notna(), typical)
        dtype = frame[column].dtype
        if isinstance(dtype, pd.CategoricalDtype):  # the values' type: the frame's categories are no vocabulary
            dtype = dtype.categories.dtype
        with contextlib.suppress(TypeError, ValueError):  # else keep the golden value's own type
            given[column] = given[column].astype(dtype)
    return given


def _golden(spec, model: _Model, frame: pd.DataFrame):
    scores = model.scores(_golden_frame(frame, spec["rows"]))
    if model.task == REGRESSION:
        expected = np.asarray(spec["expected"], dtype=np.float64)
        miss = np.abs(scores - expected)
        wrong = np.flatnonzero(miss > spec["tolerance"])
        shown = ", ".join(f"row {i}: expected {expected[i]:g} got {scores[i]:.4g}" for i in wrong[:5])
        numbers = {"max_abs_error": float(miss.max()), "tolerance": spec["tolerance"]}
        what = f"within {spec['tolerance']!r} of the expected value"
    else:
        got, expected = model.answers(scores), np.asarray(spec["expected_index"])
        wrong = np.flatnonzero(got != expected)
        probability = scores if model.task == BINARY else scores[np.arange(len(got)), got]
        names = [0, 1] if spec["expected_as_01"] else model.classes  # in the form the spec gave
        shown = ", ".join(
            f"row {i}: expected {names[expected[i]]} got {names[got[i]]} (p={probability[i]:.3f})" for i in wrong[:5]
        )
        margin = np.abs(scores - model.threshold) if model.task == BINARY else _top_two_gap(scores)
        numbers = {"min_margin": float(np.min(margin))}
        what = "predicted as expected"
    detail = f"{len(scores) - len(wrong)}/{len(scores)} golden rows {what}" + (f"; {shown}" if shown else "")
    numbers = {"n_rows": len(scores), "n_correct": int(len(scores) - len(wrong))} | numbers
    return len(wrong) == 0, detail, numbers


def _top_two_gap(proba: np.ndarray) -> np.ndarray:
    """How far each row's most probable class is ahead of the next: its margin."""
    top = np.sort(proba, axis=1)
    return top[:, -1] - top[:, -2]


def run_behaviour_tests(
    predict: Predict,
    frame: pd.DataFrame,
    specs: list[dict[str, Any]],
    *,
    threshold: float,
    task: str = BINARY,
    classes: list[Any] | None = None,
) -> list[BehaviourResult]:
    """Run each spec in order against ``predict`` (a model's scores for ``task``; ``classes`` in score order).

    Unknown kinds or columns, missing keys and labels that are not classes raise ValueError before the
    model is called.
    """
    if check_task(task) != REGRESSION and classes is None:
        classes = [0, 1] if task == BINARY else None
        if classes is None:
            raise ValueError("multiclass behaviour tests need the model's classes")
    model = _Model(predict, task, list(classes or []), threshold)
    checked = [check_spec(spec, frame, i, task, model.classes) for i, spec in enumerate(specs)]
    if len(frame) == 0 and any(spec["kind"] != "golden" for spec in checked):
        raise ValueError("invariance and directional tests need a non-empty frame")
    unique_names(checked)
    base = None
    results = []
    for spec in checked:
        if spec["kind"] == "golden":
            passed, detail, numbers = _golden(spec, model, frame)
        else:
            base = model.scores(frame) if base is None else base
            run = _invariance if spec["kind"] == "invariance" else _directional
            passed, detail, numbers = run(spec, model, frame, base)
        results.append(BehaviourResult(spec["name"], spec["kind"], bool(passed), detail, numbers))
    return results


def unique_names(specs: list[dict[str, Any]]) -> None:
    """Number repeated test names (``name#2``, ...): names key the results in the gate decision."""
    seen: dict[str, int] = {}
    for spec in specs:
        seen[spec["name"]] = seen.get(spec["name"], 0) + 1
        if seen[spec["name"]] > 1:
            spec["name"] = f"{spec['name']}#{seen[spec['name']]}"
