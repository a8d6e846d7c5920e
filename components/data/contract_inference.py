"""Drafting a contract from a reference frame: the task, dtypes, bounds, nulls, labels, keys, slices.

The draft is a starting point to review and tighten by hand (``mlops contract infer``
writes it with :func:`components.data.contract_yaml.save_contract`, the guessed task
with the reason :func:`guess_task` gives).
"""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

from components.data.contract import ColumnRule, Contract, ContractError
from components.model.tasks import BINARY, MULTICLASS, REGRESSION

MAX_CATEGORIES = 20  # more distinct values than this: a text column is "string", not "category"
MAX_CLASS_CODES = 20  # a whole-number target with more distinct values than this is a quantity, not class codes
SLICE_MAX_LEVELS = 8  # more levels make slices too small to compare


def _round_out(x: float, up: bool, digits: int = 4) -> float:
    """Round outward to ``digits`` significant figures (keeps YAML readable)."""
    if x == 0 or not math.isfinite(x):
        return float(x)
    scale = 10 ** (digits - 1 - math.floor(math.log10(abs(x))))
    return (math.ceil(x * scale) if up else math.floor(x * scale)) / scale


def _native(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def infer_dtype(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_numeric_dtype(series):
        return "float"
    non_null = series.dropna()
    small = non_null.nunique() <= MAX_CATEGORIES and non_null.nunique() < max(2, len(non_null) // 2)
    return "category" if small else "string"


def looks_like_key(series: pd.Series, name: str) -> bool:
    """Unique, complete, and named like an identifier (``id``, ``customer_id``, ``orderKey``)."""
    words = re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower())
    named = bool({"id", "key", "uuid"} & set(words))
    return named and len(series) > 1 and series.notna().all() and series.is_unique


def guess_task(series: pd.Series) -> tuple[str, str]:
    """The task a target column asks for, and why (for the contract's comment and the CLI).

    Numbers (not booleans) are a quantity to predict -- regression -- when they have a fractional
    part and more than two distinct values, or when they are whole numbers with more than
    ``MAX_CLASS_CODES`` distinct values (counts, ages, prices); a few whole numbers such as 0/1/2 are
    class codes. Anything else is labels: two make a binary task, more a multiclass one. A guess: the
    contract says ``edit if wrong``.
    """
    values = series.dropna()
    name, distinct = series.name, values.unique()
    n = len(distinct)
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric and n > 2:
        fractional = bool((values % 1 != 0).any())
        if fractional:
            return REGRESSION, f"'{name}' is numeric with fractional values ({n} distinct)"
        if n > MAX_CLASS_CODES:
            return REGRESSION, f"'{name}' is numeric with {n} distinct values"
    shown = ", ".join(str(_native(v)) for v in sorted(distinct, key=_sort_key)[:10]) + (", ..." if n > 10 else "")
    kind = f"{n} whole-number codes" if numeric and n > 2 else f"{n} label{'s' if n != 1 else ''}"
    return (MULTICLASS if n > 2 else BINARY), f"'{name}' holds {kind} ({shown})"


def _sort_key(value: Any) -> tuple[int, Any]:
    """Numbers by value, everything else by text (a column may mix them)."""
    return (0, value) if isinstance(value, int | float) and not isinstance(value, bool) else (1, str(value))


def _infer_column(series: pd.Series, name: str, margin: float) -> ColumnRule:
    dtype = infer_dtype(series)
    null_share = float(series.isna().mean()) if len(series) else 0.0
    non_null = series.dropna()
    spec: dict[str, Any] = {"dtype": dtype, "nullable": null_share > 0}
    if null_share > 0:
        spec["max_null_fraction"] = round(min(1.0, max(null_share * 2, null_share + 0.01)), 4)
    if dtype in ("float", "int") and len(non_null):
        lo, hi = float(non_null.min()), float(non_null.max())
        pad = margin * (hi - lo) or margin * abs(hi) or margin
        low, high = _round_out(lo - pad, up=False), _round_out(hi + pad, up=True)
        if lo >= 0:
            low = max(low, 0.0)
        if dtype == "int":
            low, high = float(math.floor(low)), float(math.ceil(high))
        spec.update(min=low, max=high)
    if dtype == "category":
        spec["allowed"] = sorted(str(v) for v in non_null.unique())
    if dtype == "string" or (dtype == "int" and looks_like_key(series, name)):
        spec["feature"] = False
    spec["not_constant"] = non_null.nunique() > 1
    return ColumnRule(name=name, **spec)


def infer_contract(
    frame: pd.DataFrame, target: str, *, name: str | None = None, margin: float = 0.1, task: str | None = None
) -> Contract:
    """A draft contract from a reference frame: review and tighten it by hand.

    ``task`` None guesses it from the target (:func:`guess_task`). A regression target keeps its
    bounds and lists no labels; a classification target lists its labels and their shares.
    """
    if target not in frame.columns:
        raise ContractError(f"target: '{target}' is not a column of the frame")
    task = task or guess_task(frame[target])[0]
    unlabelled = float(frame[target].isna().mean())
    columns = []
    for col in frame.columns:
        rule = _infer_column(frame[col], str(col), margin)
        if col == target:
            rule = _target_rule(rule, task, quarantine_blanks=unlabelled > 0)
        columns.append(rule)
    labels, balance = [], {}
    if task != REGRESSION:
        shares = frame[target].value_counts(normalize=True)
        labels = sorted(_native(v) for v in shares.index)
        balance = {
            _native(k): (round(max(0.0, v - margin), 4), round(min(1.0, v + margin), 4)) for k, v in shares.items()
        }
    keys = [c.name for c in columns if c.name != target and looks_like_key(frame[c.name], c.name)]
    return Contract(
        name=name or "inferred",
        columns=tuple(columns),
        target=target,
        labels=labels,
        class_balance=dict(sorted(balance.items(), key=lambda kv: str(kv[0]))),
        min_rows=max(1, int(len(frame) * margin)),
        max_rows=None,
        keys=keys[:1],
        evaluation=draft_evaluation(frame, columns),
        task=task,
        # rows without a label are set aside, not a reason to refuse the file they came in: room for twice as many
        max_quarantine_fraction=max(Contract.max_quarantine_fraction, round(min(1.0, 2 * unlabelled), 4)),
    )


def _target_rule(rule: ColumnRule, task: str, *, quarantine_blanks: bool = False) -> ColumnRule:
    """The target is never a feature nor null. A regression target is a float (whole numbers pass too)
    within the observed bounds; the labels rule covers a classification target's values. When the
    reference file has rows without a label (outcomes not known yet), those rows are quarantined:
    they cannot be trained or scored on, and the labelled rest is still good data."""
    severity = {"not_null": "quarantine"} if quarantine_blanks else {}
    if task == REGRESSION:
        return ColumnRule(name=rule.name, dtype="float", min=rule.min, max=rule.max, feature=False,
                          not_constant=False, severity=severity)  # fmt: skip
    return ColumnRule(name=rule.name, dtype=rule.dtype, feature=False, not_constant=False, severity=severity)


def draft_evaluation(frame: pd.DataFrame, columns: list[ColumnRule]) -> dict[str, Any]:
    """No thresholds (the baseline gate applies), slices on up to three low-cardinality categoricals."""
    sliceable = [
        c.name for c in columns if c.feature and c.dtype == "category" and frame[c.name].nunique() <= SLICE_MAX_LEVELS
    ]
    min_size = max(15, len(frame) // 100)
    return {"thresholds": {}, "slices": {"columns": sliceable[:3], "min_size": min_size, "bins": 4}, "behaviour": []}
