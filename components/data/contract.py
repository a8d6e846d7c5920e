"""The data contract: what a dataset must look like before anything trains on it.

A contract is a YAML file (see ``contracts/``) loaded into frozen dataclasses.
Every rule carries a severity: ``block`` stops the run, ``warn`` is reported,
``quarantine`` (row-level rules only) moves failing rows aside. This module
holds the model (rules, reading and drift options, the errors of ``errors``)
and reads it from plain data or YAML; writing it back is in ``contract_yaml``.
Drafting a contract from a frame is in ``contract_inference``; reading files
with one is in ``reading``. All three import from here, never the other way
round. The task (``binary | multiclass | regression``) and the ``evaluation``
section are checked in ``contract_sections``.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from components.data.contract_sections import check_task, parse_evaluation, task_from_labels
from components.data.errors import ContractError
from components.data.errors import DataReadError as DataReadError  # re-exported: read errors live here too
from components.model.tasks import REGRESSION

SEVERITIES = ("block", "warn", "quarantine")
DTYPES = ("float", "int", "category", "string", "bool")
ROW_RULES = frozenset({"not_null", "range", "allowed", "regex", "outliers", "labels"})
COLUMN_RULES = ("exists", "dtype", "not_null", "null_fraction", "range", "allowed", "regex")
COLUMN_RULES += ("outliers", "not_constant")
TABLE_RULES = ("row_count", "extra_columns", "unique_keys", "labels", "min_classes", "class_balance")
TABLE_RULES += ("quarantine_share",)
DEFAULT_SEVERITY = {"outliers": "quarantine"}  # everything else defaults to "block"


def _check_severities(where: str, severity: dict[str, str], known: tuple[str, ...]) -> None:
    for rule, level in severity.items():
        if rule not in known:
            raise ContractError(f"{where}.severity.{rule}: unknown rule; known: {', '.join(known)}")
        if level not in SEVERITIES:
            raise ContractError(f"{where}.severity.{rule}: {level!r} is not one of {', '.join(SEVERITIES)}")
        if level == "quarantine" and rule not in ROW_RULES:
            raise ContractError(f"{where}.severity.{rule}: quarantine is only valid for row-level rules")


@dataclass(frozen=True)
class ColumnRule:
    """Rules for one column; ``None`` bounds/sets mean "not checked"."""

    name: str
    dtype: str = "float"
    nullable: bool = False
    max_null_fraction: float | None = None
    min: float | None = None
    max: float | None = None
    allowed: list | None = None
    on_unseen: str = "block"  # severity of the "allowed" rule
    regex: str | None = None
    feature: bool = True  # False: id or free-text column, not fed to models
    not_constant: bool = True
    max_abs_z: float | None = None  # "outliers": |z-score| must stay below this
    severity: dict[str, str] = field(default_factory=dict)  # rule -> severity overrides

    def __post_init__(self) -> None:
        where = f"columns.{self.name}"
        if self.dtype not in DTYPES:
            raise ContractError(f"{where}.dtype: {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.on_unseen not in SEVERITIES:
            raise ContractError(f"{where}.on_unseen: {self.on_unseen!r} is not one of {', '.join(SEVERITIES)}")
        if self.max_null_fraction is not None and not 0 <= self.max_null_fraction <= 1:
            raise ContractError(f"{where}.max_null_fraction: must be between 0 and 1")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ContractError(f"{where}.min: {self.min} is greater than max {self.max}")
        if (self.min is not None or self.max is not None) and self.dtype not in ("float", "int"):
            raise ContractError(f"{where}.min: bounds need a numeric dtype, not {self.dtype}")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as err:
                raise ContractError(f"{where}.regex: {err}") from None
        if self.max_abs_z is not None and self.max_abs_z <= 0:
            raise ContractError(f"{where}.max_abs_z: must be positive")
        _check_severities(where, self.severity, COLUMN_RULES)

    def severity_of(self, rule: str) -> str:
        if rule == "allowed":
            return self.on_unseen
        return self.severity.get(rule, DEFAULT_SEVERITY.get(rule, "block"))

    @property
    def numeric(self) -> bool:
        return self.dtype in ("float", "int")


@dataclass(frozen=True)
class ReadOptions:
    """How to read messy files: missing-value tokens, whitespace, label suffixes."""

    na_values: list[str] = field(default_factory=lambda: ["", "NA", "N/A", "NaN", "null", "?"])
    strip_whitespace: bool = True
    label_strip_suffix: str | None = None
    delimiter: str | None = None  # None: ","
    decimal: str = "."  # "," for exports that write 3,14 (their delimiter is then not ",")
    encoding: str = "utf-8"

    def __post_init__(self) -> None:
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ContractError(f"reading.encoding: {self.encoding!r} is not an encoding Python knows") from None
        if self.decimal not in (".", ","):
            raise ContractError(f"reading.decimal: {self.decimal!r} is not '.' or ','")
        if self.decimal == (self.delimiter or ","):
            raise ContractError(f"reading.decimal: {self.decimal!r} is also the delimiter; set reading.delimiter")


@dataclass(frozen=True)
class DriftOptions:
    psi_threshold: float = 0.2
    new_category_threshold: float = 0.05
    severity: str = "warn"

    def __post_init__(self) -> None:
        if self.severity not in ("block", "warn"):
            raise ContractError(f"drift.severity: {self.severity!r} must be block or warn")
        if self.psi_threshold <= 0 or not 0 <= self.new_category_threshold <= 1:
            raise ContractError("drift.psi_threshold must be > 0 and new_category_threshold in [0, 1]")


@dataclass(frozen=True)
class Contract:
    """A dataset's contract: columns, target, task and labels, table-level rules."""

    name: str
    columns: tuple[ColumnRule, ...]
    target: str
    labels: list  # the target's allowed values; empty: not checked (always, for regression)
    class_balance: dict = field(default_factory=dict)  # label -> (min share, max share)
    min_rows: int = 1
    max_rows: int | None = None
    keys: list[str] = field(default_factory=list)
    allow_extra_columns: bool = False
    reading: ReadOptions = field(default_factory=ReadOptions)
    max_quarantine_fraction: float = 0.05
    drift: DriftOptions = field(default_factory=DriftOptions)
    severity: dict[str, str] = field(default_factory=dict)  # table rule -> severity overrides
    # what a model of this data must show: primary metric, thresholds, slices, behaviour (dataset_settings)
    evaluation: dict[str, Any] = field(default_factory=dict)
    # binary | multiclass | regression; None (a contract without one): more than two labels is multiclass
    task: str | None = None

    def __post_init__(self) -> None:
        if self.task is None:
            object.__setattr__(self, "task", task_from_labels(self.labels))
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ContractError("columns: duplicate column names")
        if self.target not in names:
            raise ContractError(f"target: '{self.target}' is not among the contract's columns")
        for key in self.keys:
            if key not in names:
                raise ContractError(f"keys: '{key}' is not among the contract's columns")
        check_task(self)
        for label, bounds in self.class_balance.items():
            if label not in self.labels:
                raise ContractError(f"class_balance.{label}: not one of the labels {self.labels}")
            lo, hi = bounds
            if not 0 <= lo <= hi <= 1:
                raise ContractError(f"class_balance.{label}: need 0 <= min <= max <= 1, got {bounds}")
        if self.min_rows < 0 or (self.max_rows is not None and self.max_rows < self.min_rows):
            raise ContractError(f"rows: need 0 <= min ({self.min_rows}) <= max ({self.max_rows})")
        if not 0 <= self.max_quarantine_fraction <= 1:
            raise ContractError("max_quarantine_fraction: must be between 0 and 1")
        _check_severities("table", self.severity, TABLE_RULES)

    @property
    def is_classification(self) -> bool:
        """Whether the target holds labels (binary, multiclass) rather than numbers to predict."""
        return self.task != REGRESSION

    def column(self, name: str) -> ColumnRule | None:
        return next((c for c in self.columns if c.name == name), None)

    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def feature_columns(self) -> list[str]:
        """Columns fed to models: ``feature: true``, target excluded."""
        return [c.name for c in self.columns if c.feature and c.name != self.target]

    def severity_of(self, rule: str) -> str:
        return self.severity.get(rule, "block")


# --- from plain data / YAML -------------------------------------------------

_COLUMN_KEYS = {f.name for f in fields(ColumnRule)} - {"name"}
_TOP_KEYS = {"name", "columns", "target", "task", "labels", "class_balance", "rows", "keys"}
_TOP_KEYS |= {"allow_extra_columns", "reading", "max_quarantine_fraction", "drift", "severity", "evaluation"}


def _sub(cls: type, data: Any, where: str) -> Any:
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ContractError(f"{where}: expected a mapping")
    known = {f.name for f in fields(cls)}
    for key in data:
        if key not in known:
            raise ContractError(f"{where}.{key}: unknown key; known: {', '.join(sorted(known))}")
    try:
        return cls(**data)
    except TypeError as err:
        raise ContractError(f"{where}: {err}") from None


def _column_from_dict(name: str, spec: Any) -> ColumnRule:
    if spec is not None and not isinstance(spec, dict):
        raise ContractError(f"columns.{name}: expected a mapping of rules, got {spec!r}")
    spec = dict(spec or {})
    for key in spec:
        if key not in _COLUMN_KEYS:
            raise ContractError(f"columns.{name}.{key}: unknown key; known: {', '.join(sorted(_COLUMN_KEYS))}")
    if spec.get("allowed") is not None:
        if not isinstance(spec["allowed"], list):
            raise ContractError(f"columns.{name}.allowed: expected a list")
        if spec.get("dtype") in ("category", "string"):
            spec["allowed"] = [str(v) for v in spec["allowed"]]
    for key in ("min", "max", "max_null_fraction", "max_abs_z"):
        if spec.get(key) is not None and not isinstance(spec[key], int | float):
            raise ContractError(f"columns.{name}.{key}: expected a number, got {spec[key]!r}")
    return ColumnRule(name=str(name), **spec)


def contract_from_dict(d: dict) -> Contract:
    """Build a Contract from plain data (as in the YAML file); errors name the field."""
    if not isinstance(d, dict):
        raise ContractError("contract: expected a mapping at the top level")
    for key in d:
        if key not in _TOP_KEYS:
            raise ContractError(f"{key}: unknown key; known: {', '.join(sorted(_TOP_KEYS))}")
    regression = d.get("task") == REGRESSION
    for key in ("name", "columns", "target") if regression else ("name", "columns", "target", "labels"):
        if key not in d:
            raise ContractError(f"{key}: missing required key")
    labels = d.get("labels") or []
    if not isinstance(labels, list) or not (labels or regression):
        raise ContractError("labels: expected a non-empty list of the target's values")
    if not isinstance(d["columns"], dict) or not d["columns"]:
        raise ContractError("columns: expected a mapping of column name -> rules")
    rows = d.get("rows") or {}
    balance = {}
    for label, bounds in (d.get("class_balance") or {}).items():
        if not isinstance(bounds, dict) or set(bounds) - {"min", "max"}:
            raise ContractError(f"class_balance.{label}: expected {{min: share, max: share}}")
        try:
            balance[label] = (float(bounds.get("min", 0.0)), float(bounds.get("max", 1.0)))
        except (TypeError, ValueError):
            raise ContractError(f"class_balance.{label}: min and max must be numbers") from None
    try:
        return Contract(
            name=str(d["name"]),
            columns=tuple(_column_from_dict(n, s) for n, s in d["columns"].items()),
            target=d["target"],
            labels=list(labels),
            class_balance=balance,
            min_rows=int(rows.get("min", 1)),
            max_rows=None if rows.get("max") is None else int(rows["max"]),
            keys=list(d.get("keys") or []),
            allow_extra_columns=bool(d.get("allow_extra_columns", False)),
            reading=_sub(ReadOptions, d.get("reading"), "reading"),
            max_quarantine_fraction=float(d.get("max_quarantine_fraction", 0.05)),
            drift=_sub(DriftOptions, d.get("drift"), "drift"),
            severity=dict(d.get("severity") or {}),
            evaluation=parse_evaluation(d.get("evaluation"), [str(c) for c in d["columns"]]),
            task=None if d.get("task") is None else str(d["task"]),
        )
    except ContractError:
        raise
    except (TypeError, ValueError, AttributeError) as err:
        raise ContractError(f"contract: {err}") from None


def read_contract_yaml(path: str | Path) -> Any:
    """A contract file's YAML, parsed (tables and images alike); a missing file or invalid YAML is a ContractError."""
    path = Path(path)
    if not path.is_file():
        raise ContractError(f"contract file not found: {path}")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ContractError(f"{path}: not valid YAML: {err}") from None


def load_contract(path: str | Path) -> Contract:
    """Read a contract YAML file; a missing file or invalid YAML is a ContractError too."""
    return contract_from_dict(read_contract_yaml(path))
