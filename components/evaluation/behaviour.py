"""Model behaviour tests: invariance, direction and minimum functionality (golden rows).

Configured by plain dicts from ``params.yaml``; run against any ``predict_proba``
that maps a feature frame to positive-class probabilities. Every spec is checked
before the model is called, so a typo fails fast and names the key.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

KINDS = ("invariance", "directional", "golden")
PERTURBATIONS = ("shift", "scale", "replace")
_REQUIRED = {
    "invariance": ("column", "perturbation", "max_flip_rate"),
    "directional": ("column", "delta", "expect", "min_fraction"),
    "golden": ("rows", "expected"),
}
_TIE = 1e-9  # a probability change this small counts as "unchanged" for directional tests

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


def _check_spec(spec: Mapping[str, Any], frame: pd.DataFrame, position: int) -> dict[str, Any]:
    kind = spec.get("kind")
    label = spec.get("name") or f"#{position}"
    if kind not in KINDS:
        raise ValueError(f"behaviour test {label}: unknown kind {kind!r}; known kinds: {', '.join(KINDS)}")
    missing = [k for k in _REQUIRED[kind] if k not in spec]
    if missing:
        raise ValueError(f"behaviour test {label} ({kind}): missing key(s) {', '.join(missing)}")
    if kind == "golden":
        unknown = sorted({c for row in spec["rows"] for c in row if c not in frame.columns})
        if unknown:
            raise ValueError(f"behaviour test {label} (golden): unknown column(s) {', '.join(unknown)}")
        if len(spec["rows"]) != len(spec["expected"]) or not spec["rows"]:
            raise ValueError(
                f"behaviour test {label} (golden): needs as many expected labels as rows (and >= 1)"
            )
        return {**spec, "name": spec.get("name") or "golden"}
    column = spec["column"]
    if column not in frame.columns:
        raise ValueError(f"behaviour test {label} ({kind}): unknown column {column!r}")
    numeric = pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(frame[column])
    if kind == "invariance":
        perturbation = spec["perturbation"]
        if (
            not isinstance(perturbation, Mapping)
            or len(perturbation) != 1
            or next(iter(perturbation)) not in PERTURBATIONS
        ):
            raise ValueError(
                f"behaviour test {label}: perturbation must be one of {{shift|scale|replace: value}}"
            )
        if next(iter(perturbation)) != "replace" and not numeric:
            raise ValueError(f"behaviour test {label}: cannot shift or scale non-numeric column {column!r}")
    else:
        if spec["expect"] not in ("increase", "decrease"):
            raise ValueError(
                f"behaviour test {label}: expect must be 'increase' or 'decrease', not {spec['expect']!r}"
            )
        if not numeric:
            raise ValueError(f"behaviour test {label}: cannot shift non-numeric column {column!r}")
    return {**spec, "name": spec.get("name") or f"{kind}:{column}"}


def _proba(predict_proba: Predict, frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(predict_proba(frame), dtype=np.float64).reshape(-1)


def _perturbed(frame: pd.DataFrame, column: str, perturbation: Mapping[str, Any]) -> pd.DataFrame:
    ((op, value),) = perturbation.items()
    if op == "shift":
        new = frame[column] + value
    elif op == "scale":
        new = frame[column] * value
    else:
        new = pd.Series([value]).repeat(len(frame)).set_axis(frame.index)  # dtype as inferred for [value]
    return frame.assign(**{column: new})  # a new frame; the input is left as it was


def _invariance(spec, predict_proba: Predict, frame: pd.DataFrame, base: np.ndarray, threshold: float):
    after = _proba(predict_proba, _perturbed(frame, spec["column"], spec["perturbation"]))
    flipped = int(np.sum((base >= threshold) != (after >= threshold)))
    rate = flipped / len(base)
    ((op, value),) = spec["perturbation"].items()
    passed = rate <= spec["max_flip_rate"]
    detail = (
        f"{spec['column']} {op} {value!r}: predictions flip on {rate:.2%} of rows ({flipped}/{len(base)}); "
        f"allowed at most {spec['max_flip_rate']:.2%}"
    )
    numbers = {"flip_rate": rate, "n_flipped": flipped, "n_rows": len(base)}
    numbers |= {
        "max_flip_rate": spec["max_flip_rate"],
        "mean_abs_change": float(np.mean(np.abs(after - base))),
    }
    return passed, detail, numbers


def _directional(spec, predict_proba: Predict, frame: pd.DataFrame, base: np.ndarray, threshold: float):
    after = _proba(predict_proba, _perturbed(frame, spec["column"], {"shift": spec["delta"]}))
    change = after - base
    ok = change >= -_TIE if spec["expect"] == "increase" else change <= _TIE
    fraction = float(np.mean(ok))
    passed = fraction >= spec["min_fraction"]
    detail = (
        f"{spec['column']} shifted by {spec['delta']!r}: probability moves to {spec['expect']} (or stays) on "
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


def _golden(spec, predict_proba: Predict, frame: pd.DataFrame, threshold: float):
    proba = _proba(predict_proba, _golden_frame(frame, spec["rows"]))
    got = (proba >= threshold).astype(int)
    expected = np.asarray(spec["expected"]).astype(int)
    wrong = np.flatnonzero(got != expected)
    shown = ", ".join(f"row {i}: expected {expected[i]} got {got[i]} (p={proba[i]:.3f})" for i in wrong[:5])
    detail = f"{len(got) - len(wrong)}/{len(got)} golden rows predicted as expected" + (
        f"; {shown}" if shown else ""
    )
    numbers = {
        "n_rows": len(got),
        "n_correct": int(len(got) - len(wrong)),
        "min_margin": float(np.min(np.abs(proba - threshold))),
    }
    return len(wrong) == 0, detail, numbers


def run_behaviour_tests(
    predict_proba: Predict, frame: pd.DataFrame, specs: list[dict[str, Any]], *, threshold: float
) -> list[BehaviourResult]:
    """Run each spec in order.

    Unknown kinds or columns and missing keys raise ValueError before the model is called.
    """
    checked = [_check_spec(spec, frame, i) for i, spec in enumerate(specs)]
    if len(frame) == 0 and any(spec["kind"] != "golden" for spec in checked):
        raise ValueError("invariance and directional tests need a non-empty frame")
    seen: dict[str, int] = {}
    for spec in checked:  # names key the results in the gate decision, so keep them unique
        seen[spec["name"]] = seen.get(spec["name"], 0) + 1
        if seen[spec["name"]] > 1:
            spec["name"] = f"{spec['name']}#{seen[spec['name']]}"
    base = None
    results = []
    for spec in checked:
        if spec["kind"] == "golden":
            passed, detail, numbers = _golden(spec, predict_proba, frame, threshold)
        else:
            base = _proba(predict_proba, frame) if base is None else base
            run = _invariance if spec["kind"] == "invariance" else _directional
            passed, detail, numbers = run(spec, predict_proba, frame, base, threshold)
        results.append(BehaviourResult(spec["name"], spec["kind"], bool(passed), detail, numbers))
    return results
