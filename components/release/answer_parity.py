"""Do the service's answers equal the registered pyfunc's? One comparison per task.

The reference is the pyfunc's output frame (``components.model.trained.TrainedModel.predict_frame``):

- binary: ``label``, ``probability`` (the service also sends ``probabilities``: [1 - p, p]);
- multiclass: ``label``, ``probability`` (of the label), one ``proba_<class>`` column per class,
  which the service sends as ``probabilities[<class>]``;
- regression: ``value``, compared relative to its size (``tol * max(1, |value|)``): a float32
  model's last digits on a value in the millions are not a difference in behaviour.

A comparison names the first row and field that differ, so a failed infra validation says where.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

BINARY, MULTICLASS, REGRESSION = "binary", "multiclass", "regression"  # components.model.tasks
PROBA_PREFIX = "proba_"  # components.model.tasks.proba_column


@dataclass(frozen=True)
class Comparison:
    """``label_mismatches``: rows whose label differs (classification). ``max_diff``: the largest
    probability difference (classification) or value difference over ``max(1, |value|)`` (regression).
    ``first``: the first row and field beyond tolerance, or None when everything agrees."""

    label_mismatches: int
    max_diff: float
    first: str | None = None


def reference_task(expected: pd.DataFrame) -> str:
    """The task a pyfunc output frame belongs to, read from its columns."""
    if "value" in expected.columns:
        return REGRESSION
    if any(str(c).startswith(PROBA_PREFIX) for c in expected.columns):
        return MULTICLASS
    if {"label", "probability"} <= set(expected.columns):
        return BINARY
    raise ValueError(f"the reference pyfunc answered columns {list(expected.columns)}: none of the three tasks'")


def _number(value: Any) -> float:
    """A served number as float; NaN for anything else (null, text, a missing field)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return math.nan


def _gaps(expected: np.ndarray, served: list[Any], scale: np.ndarray | None = None) -> np.ndarray:
    """|expected - served| (over ``scale``); a missing or non-numeric answer is an infinite gap."""
    got = np.array([_number(x) for x in served], dtype=np.float64)
    gap = np.abs(expected - got) if scale is None else np.abs(expected - got) / scale
    return np.nan_to_num(gap, nan=math.inf)


def _fields(expected: pd.DataFrame, served: list[dict[str, Any]], task: str) -> list[tuple[str, np.ndarray, list]]:
    """(field name, the reference's numbers, the served ones) for every probability field of ``task``."""
    probability = expected["probability"].to_numpy(dtype=np.float64)
    fields = [("probability", probability, [p.get("probability") for p in served])]
    per_row = [p.get("probabilities") if isinstance(p.get("probabilities"), dict) else {} for p in served]
    if task == BINARY:  # [1 - p, p] in class order: the reference frame does not name the classes
        positional = [list(d.values()) if len(d) == 2 else [None, None] for d in per_row]
        fields.append(("probabilities[negative class]", 1.0 - probability, [d[0] for d in positional]))
        fields.append(("probabilities[positive class]", probability, [d[1] for d in positional]))
        return fields
    for column in (c for c in expected.columns if str(c).startswith(PROBA_PREFIX)):
        name = str(column)[len(PROBA_PREFIX) :]
        fields.append((f"probabilities[{name!r}]", expected[column].to_numpy(dtype=np.float64),
                       [d.get(name) for d in per_row]))  # fmt: skip
    return fields


def compare_predictions(
    expected: pd.DataFrame,
    served: list[dict[str, Any]],
    *,
    task: str | None = None,
    tol: float = 1e-6,
    where: str = "row",
) -> Comparison:
    """Compare the service's answers with the reference frame's, row by row (``task`` defaults to the
    frame's own). ``where`` prefixes the row number in ``first`` ("single request row", say)."""
    task = task or reference_task(expected)
    if len(served) != len(expected):
        first = f"{len(served)} answers for {len(expected)} rows"
        return Comparison(label_mismatches=len(expected), max_diff=math.inf, first=first)
    if not len(expected):
        return Comparison(0, 0.0)
    if task == REGRESSION:
        values = expected["value"].to_numpy(dtype=np.float64)
        gap = _gaps(values, [p.get("value") for p in served], np.maximum(1.0, np.abs(values)))
        bad = np.flatnonzero(gap > tol)
        first = None
        if len(bad):
            i = int(bad[0])
            got, want = served[i].get("value"), float(values[i])
            first = f"{where} {i}: value {got!r} served, {want!r} by the reference pyfunc"
        return Comparison(label_mismatches=0, max_diff=float(gap.max()), first=first)
    labels = expected["label"].tolist()
    wrong_label = np.array([a != p.get("label") for a, p in zip(labels, served, strict=True)], dtype=bool)
    fields = [(name, _gaps(want, got), want, got) for name, want, got in _fields(expected, served, task)]
    wrong = wrong_label.copy()
    for _, gap, _, _ in fields:
        wrong |= gap > tol
    first = None
    if wrong.any():
        i = int(np.flatnonzero(wrong)[0])
        if wrong_label[i]:
            first = f"{where} {i}: label {served[i].get('label')!r} served, {labels[i]!r} by the reference pyfunc"
        else:
            name, _, want, got = next(f for f in fields if f[1][i] > tol)
            first = f"{where} {i}: {name} {got[i]!r} served, {float(want[i])!r} by the reference pyfunc"
    max_diff = max(float(gap.max()) for _, gap, _, _ in fields)
    return Comparison(label_mismatches=int(wrong_label.sum()), max_diff=max_diff, first=first)


def parity_problems(task: str, single: Comparison, batch: Comparison, tol: float) -> list[str]:
    """What differs from the reference pyfunc, then the first row and field that does."""
    max_diff = max(single.max_diff, batch.max_diff)
    problems = []
    if task == REGRESSION:
        if max_diff > tol:
            problems.append(f"values differ by up to {max_diff:.3g} x max(1, |value|) (> {tol:g})")
    else:
        if mismatches := single.label_mismatches + batch.label_mismatches:
            problems.append(f"{mismatches} labels differ from the reference pyfunc")
        if max_diff > tol:
            problems.append(f"probabilities differ by up to {max_diff:.3g} (> {tol:g})")
    first = next((c.first for c in (single, batch) if c.first), None)
    return [*problems, f"first difference: {first}"] if problems and first else problems
