"""Writing a data contract: plain data in a human-friendly key order, and commented YAML.

The other half of the round trip, reading (``contract_from_dict``, ``load_contract``),
is in ``components.data.contract``; this module imports from there, never the other
way round.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from components.data.contract import ColumnRule, Contract, DriftOptions, ReadOptions
from components.data.contract_sections import EVALUATION_KEYS, min_classes


def _column_to_dict(col: ColumnRule) -> dict:
    default = ColumnRule(name=col.name)
    out: dict[str, Any] = {"dtype": col.dtype, "nullable": col.nullable}
    # The rest only where it differs from the default, so a written contract shows what was decided.
    optional = ("max_null_fraction", "min", "max", "allowed", "on_unseen", "regex", "feature", "not_constant")
    for key in (*optional, "max_abs_z", "severity"):
        if getattr(col, key) != getattr(default, key):
            out[key] = getattr(col, key)
    return out


def contract_to_dict(c: Contract) -> dict:
    """Plain data for YAML, in a human-friendly key order; a regression contract has no labels to list."""
    labels = {
        "labels": list(c.labels),
        "class_balance": {k: {"min": lo, "max": hi} for k, (lo, hi) in c.class_balance.items()},
    }
    return {
        "name": c.name,
        "target": c.target,
        "task": c.task,
        **(labels if c.is_classification else {}),
        "rows": {"min": c.min_rows, "max": c.max_rows},
        "keys": list(c.keys),
        "allow_extra_columns": c.allow_extra_columns,
        "max_quarantine_fraction": c.max_quarantine_fraction,
        "severity": dict(c.severity),
        "reading": {f.name: getattr(c.reading, f.name) for f in fields(ReadOptions)},
        "drift": {f.name: getattr(c.drift, f.name) for f in fields(DriftOptions)},
        "evaluation": {k: c.evaluation.get(k) for k in EVALUATION_KEYS if k in c.evaluation},
        "columns": {col.name: _column_to_dict(col) for col in c.columns},
    }


_COMMENTS = {
    "labels": "allowed target values (rule: labels); at least {} must occur (rule: min_classes)",
    "class_balance": "allowed share of each label (rule: class_balance)",
    "rows": "row-count bounds (rule: row_count); max: null = unbounded",
    "keys": "columns whose combination must be unique (rule: unique_keys)",
    "severity": "table-rule severity overrides: block | warn | quarantine (row-level rules only)",
    "reading": "how read_with_contract parses CSV files",
    "drift": "drift vs a reference frame (rule: drift)",
    "evaluation": "what a model of this data must show before promotion (params.yaml's evaluate.* win when set):\n"
    "#   thresholds on the held-out test split ({{}} = beat the {} baseline); slices (metrics per\n"
    "#   group, numeric columns cut into bins); behaviour tests (invariance, directional, golden)",
    "columns": "per column: dtype float|int|category|string|bool, nullable, min/max, allowed + on_unseen,\n"
    "# regex, feature (false = id/text), not_constant, max_abs_z, severity overrides per rule",
}


def _comment(key: str, contract: Contract) -> str:
    text = _COMMENTS[key]
    if key == "labels":
        return text.format({2: "two", 3: "three"}[min_classes(contract.task)])
    if key == "evaluation":
        return text.format("class-prior" if contract.is_classification else "training-mean")
    return text


def _task_line(contract: Contract, reason: str | None) -> str:
    """``task: ...`` with a comment: why it was guessed (``contract infer``), else the choices."""
    note = f"guessed: {' '.join(reason.split())}; edit if wrong" if reason else "binary | multiclass | regression"
    return f"task: {contract.task}  # {note}\n"


def save_contract(contract: Contract, path: str | Path, *, task_reason: str | None = None) -> None:
    """Write the contract as commented YAML that :func:`~components.data.contract.load_contract` reads back.

    ``task_reason`` (from ``contract_inference.guess_task``) goes into the comment on the ``task:`` line.
    """
    data = contract_to_dict(contract)
    parts = [f"# Data contract '{contract.name}'. Rules fail with their severity: block | warn | quarantine.\n"]
    for key, value in data.items():
        if key in _COMMENTS:
            parts.append(f"\n# {_comment(key, contract)}\n")
        if key == "task":
            parts.append(_task_line(contract, task_reason))
            continue
        style = None if isinstance(value, dict | list) else False  # flow style for leaf collections only
        # allow_unicode: a column named "région" is written as such, not as "r\xE9gion"
        parts.append(
            yaml.safe_dump({key: value}, sort_keys=False, default_flow_style=style, width=110, allow_unicode=True)
        )
    Path(path).write_text("".join(parts), encoding="utf-8")
