"""The behaviour test specs (components.evaluation.behaviour), checked before any model runs.

A spec is a plain dict from ``params.yaml`` or the contract; each error names the test and the key.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from components.model.tasks import BINARY, MULTICLASS, REGRESSION

KINDS = ("invariance", "directional", "golden")
PERTURBATIONS = ("shift", "scale", "replace")
_REQUIRED = {
    "invariance": ("column", "perturbation", "max_flip_rate"),
    "directional": ("column", "delta", "expect", "min_fraction"),
    "golden": ("rows", "expected"),
}
_REQUIRED_FOR = {  # what a task needs instead of, or besides, the keys above
    (REGRESSION, "invariance"): ("column", "perturbation", "tolerance"),
    (REGRESSION, "golden"): ("rows", "expected", "tolerance"),
    (MULTICLASS, "directional"): (*_REQUIRED["directional"], "class"),
}


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def class_index(value: Any, classes: list[Any]) -> int | None:
    """Where ``value`` is in ``classes``; a YAML ``1`` finds the label ``"1"`` and the other way round."""
    for i, c in enumerate(classes):
        with contextlib.suppress(TypeError, ValueError):
            if c == value:
                return i
    text = str(value)
    return next((i for i, c in enumerate(classes) if str(c) == text), None)


def _expected_classes(label: str, expected: list[Any], task: str, classes: list[Any]) -> tuple[list[int], bool]:
    """Golden ``expected`` as class indices, and whether they were given as 0/1 (binary's older form).

    Class labels come first: with classes ``[1, 2]``, ``expected: [1]`` means the class 1 (the negative).
    """
    found = [class_index(e, classes) for e in expected]
    if all(i is not None for i in found):
        return found, False  # type: ignore[return-value]
    if task == BINARY:
        with contextlib.suppress(TypeError, ValueError):
            as_int = np.asarray(expected).astype(int)
            if np.isin(as_int, (0, 1)).all():
                return as_int.tolist(), True
    bad = [e for e, i in zip(expected, found, strict=True) if i is None]
    hint = " or 0/1 for negative/positive" if task == BINARY else ""
    raise ValueError(f"behaviour test {label} (golden): expected holds {bad!r}, not a class of the model "
                     f"({list(classes)!r}{hint})")  # fmt: skip


def check_spec(
    spec: Mapping[str, Any], frame: pd.DataFrame, position: int, task: str, classes: list[Any]
) -> dict[str, Any]:
    """``spec`` checked against ``frame`` and the model's ``task`` and ``classes``, with its name filled in
    (and, for classifiers, the class indices its labels mean). Raises ValueError naming the test and the key."""
    kind = spec.get("kind")
    label = spec.get("name") or f"#{position}"
    if kind not in KINDS:
        raise ValueError(f"behaviour test {label}: unknown kind {kind!r}; known kinds: {', '.join(KINDS)}")
    missing = [k for k in _REQUIRED_FOR.get((task, kind), _REQUIRED[kind]) if k not in spec]
    if missing:
        raise ValueError(f"behaviour test {label} ({kind}, {task} model): missing key(s) {', '.join(missing)}")
    for key in ("tolerance", "max_fraction", "max_flip_rate", "min_fraction"):
        if key in spec and (not _is_number(spec[key]) or spec[key] < 0):
            raise ValueError(f"behaviour test {label} ({kind}): {key} must be a number >= 0, got {spec[key]!r}")
    if kind == "golden":
        unknown = sorted({c for row in spec["rows"] for c in row if c not in frame.columns})
        if unknown:
            raise ValueError(f"behaviour test {label} (golden): unknown column(s) {', '.join(unknown)}")
        if len(spec["rows"]) != len(spec["expected"]) or not spec["rows"]:
            raise ValueError(f"behaviour test {label} (golden): needs as many expected values as rows (and >= 1)")
        checked = {**spec, "name": spec.get("name") or "golden"}
        if task == REGRESSION:
            if not all(_is_number(e) for e in spec["expected"]):
                raise ValueError(f"behaviour test {label} (golden): expected must hold numbers for a regression "
                                 f"model, got {spec['expected']!r}")  # fmt: skip
        else:
            index, as_01 = _expected_classes(label, list(spec["expected"]), task, classes)
            checked |= {"expected_index": index, "expected_as_01": as_01}
        return checked
    column = spec["column"]
    if column not in frame.columns:
        raise ValueError(f"behaviour test {label} ({kind}): unknown column {column!r}")
    numeric = pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(frame[column])
    checked = {**spec, "name": spec.get("name") or f"{kind}:{column}"}
    if kind == "invariance":
        perturbation = spec["perturbation"]
        if (
            not isinstance(perturbation, Mapping)
            or len(perturbation) != 1
            or next(iter(perturbation)) not in PERTURBATIONS
        ):
            raise ValueError(f"behaviour test {label}: perturbation must be one of {{shift|scale|replace: value}}")
        if next(iter(perturbation)) != "replace" and not numeric:
            raise ValueError(f"behaviour test {label}: cannot shift or scale non-numeric column {column!r}")
        return checked
    if spec["expect"] not in ("increase", "decrease"):
        raise ValueError(f"behaviour test {label}: expect must be 'increase' or 'decrease', not {spec['expect']!r}")
    if not numeric:
        raise ValueError(f"behaviour test {label}: cannot shift non-numeric column {column!r}")
    if task == MULTICLASS:
        index = class_index(spec["class"], classes)
        if index is None:
            raise ValueError(f"behaviour test {label} (directional): class {spec['class']!r} is not one of the "
                             f"model's classes {list(classes)!r}")  # fmt: skip
        checked["class_index"] = index
    return checked
