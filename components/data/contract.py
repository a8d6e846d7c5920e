"""The data contract: what a dataset must look like before anything trains on it.

A contract is a YAML file (see ``contracts/``) loaded into frozen dataclasses.
Every rule carries a severity: ``block`` stops the run, ``warn`` is reported,
``quarantine`` (row-level rules only) moves failing rows aside. This module
holds the model, its YAML round trip, draft inference from a reference frame and
reading CSV/Parquet files with the contract's reading options.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

SEVERITIES = ("block", "warn", "quarantine")
DTYPES = ("float", "int", "category", "string", "bool")
ROW_RULES = frozenset({"not_null", "range", "allowed", "regex", "outliers", "labels"})
COLUMN_RULES = ("exists", "dtype", "not_null", "null_fraction", "range", "allowed", "regex")
COLUMN_RULES += ("outliers", "not_constant")
TABLE_RULES = ("row_count", "extra_columns", "unique_keys", "labels", "min_classes", "class_balance")
TABLE_RULES += ("quarantine_share",)
DEFAULT_SEVERITY = {"outliers": "quarantine"}  # everything else defaults to "block"
MAX_CATEGORIES = 20
_NUMPY_DTYPE = {"float": np.dtype("float64"), "int": np.dtype("int64")}


class ContractError(ValueError):
    """The contract is invalid; the message names the field."""


class DataReadError(ValueError):
    """A file cannot be read as the contract says; the message names the problem."""


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
    encoding: str = "utf-8"


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
    """A dataset's contract: columns, target and labels, table-level rules."""

    name: str
    columns: tuple[ColumnRule, ...]
    target: str
    labels: list
    class_balance: dict = field(default_factory=dict)  # label -> (min share, max share)
    min_rows: int = 1
    max_rows: int | None = None
    keys: list[str] = field(default_factory=list)
    allow_extra_columns: bool = False
    reading: ReadOptions = field(default_factory=ReadOptions)
    max_quarantine_fraction: float = 0.05
    drift: DriftOptions = field(default_factory=DriftOptions)
    severity: dict[str, str] = field(default_factory=dict)  # table rule -> severity overrides
    # what a model of this data must show: thresholds, slices, behaviour (components.dataset_settings)
    evaluation: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ContractError("columns: duplicate column names")
        if self.target not in names:
            raise ContractError(f"target: '{self.target}' is not among the contract's columns")
        for key in self.keys:
            if key not in names:
                raise ContractError(f"keys: '{key}' is not among the contract's columns")
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

    def column(self, name: str) -> ColumnRule | None:
        return next((c for c in self.columns if c.name == name), None)

    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def feature_columns(self) -> list[str]:
        """Columns fed to models: ``feature: true``, target excluded."""
        return [c.name for c in self.columns if c.feature and c.name != self.target]

    def severity_of(self, rule: str) -> str:
        return self.severity.get(rule, "block")


# --- dict / YAML round trip -------------------------------------------------

_COLUMN_KEYS = {f.name for f in fields(ColumnRule)} - {"name"}
_TOP_KEYS = {"name", "columns", "target", "labels", "class_balance", "rows", "keys"}
_TOP_KEYS |= {"allow_extra_columns", "reading", "max_quarantine_fraction", "drift", "severity", "evaluation"}
_EVALUATION_KEYS = ("thresholds", "slices", "behaviour")


def _evaluation(data: Any, columns: list[str]) -> dict[str, Any]:
    """The contract's ``evaluation`` section, checked for shape (values are typed by the settings)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ContractError("evaluation: expected a mapping of thresholds, slices and behaviour")
    for key in data:
        if key not in _EVALUATION_KEYS:
            raise ContractError(f"evaluation.{key}: unknown key; known: {', '.join(_EVALUATION_KEYS)}")
    thresholds = data.get("thresholds") or {}
    if not isinstance(thresholds, dict) or not all(isinstance(v, int | float) for v in thresholds.values()):
        raise ContractError("evaluation.thresholds: expected a mapping of metric -> minimum value")
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
    return {"thresholds": dict(thresholds), "slices": dict(slices), "behaviour": list(behaviour)}


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
    for key in ("name", "columns", "target", "labels"):
        if key not in d:
            raise ContractError(f"{key}: missing required key")
    if not isinstance(d["labels"], list) or not d["labels"]:
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
            labels=list(d["labels"] or []),
            class_balance=balance,
            min_rows=int(rows.get("min", 1)),
            max_rows=None if rows.get("max") is None else int(rows["max"]),
            keys=list(d.get("keys") or []),
            allow_extra_columns=bool(d.get("allow_extra_columns", False)),
            reading=_sub(ReadOptions, d.get("reading"), "reading"),
            max_quarantine_fraction=float(d.get("max_quarantine_fraction", 0.05)),
            drift=_sub(DriftOptions, d.get("drift"), "drift"),
            severity=dict(d.get("severity") or {}),
            evaluation=_evaluation(d.get("evaluation"), [str(c) for c in d["columns"]]),
        )
    except ContractError:
        raise
    except (TypeError, ValueError, AttributeError) as err:
        raise ContractError(f"contract: {err}") from None


def _column_to_dict(col: ColumnRule) -> dict:
    default = ColumnRule(name=col.name)
    out: dict[str, Any] = {"dtype": col.dtype, "nullable": col.nullable}
    for key in ("max_null_fraction", "min", "max", "allowed", "on_unseen", "regex", "feature"):
        value = getattr(col, key)
        if value != getattr(default, key):
            out[key] = value
    for key in ("not_constant", "max_abs_z", "severity"):
        if getattr(col, key) != getattr(default, key):
            out[key] = getattr(col, key)
    return out


def contract_to_dict(c: Contract) -> dict:
    """Plain data for YAML, in a human-friendly key order."""
    return {
        "name": c.name,
        "target": c.target,
        "labels": list(c.labels),
        "class_balance": {k: {"min": lo, "max": hi} for k, (lo, hi) in c.class_balance.items()},
        "rows": {"min": c.min_rows, "max": c.max_rows},
        "keys": list(c.keys),
        "allow_extra_columns": c.allow_extra_columns,
        "max_quarantine_fraction": c.max_quarantine_fraction,
        "severity": dict(c.severity),
        "reading": {f.name: getattr(c.reading, f.name) for f in fields(ReadOptions)},
        "drift": {f.name: getattr(c.drift, f.name) for f in fields(DriftOptions)},
        "evaluation": {k: c.evaluation.get(k) for k in _EVALUATION_KEYS if k in c.evaluation},
        "columns": {col.name: _column_to_dict(col) for col in c.columns},
    }


_COMMENTS = {
    "labels": "allowed target values (rule: labels); at least two must occur (rule: min_classes)",
    "class_balance": "allowed share of each label (rule: class_balance)",
    "rows": "row-count bounds (rule: row_count); max: null = unbounded",
    "keys": "columns whose combination must be unique (rule: unique_keys)",
    "severity": "table-rule severity overrides: block | warn | quarantine (row-level rules only)",
    "reading": "how read_with_contract parses CSV files",
    "drift": "drift vs a reference frame (rule: drift)",
    "evaluation": "what a model of this data must show before promotion (params.yaml's evaluate.* win when set):\n"
    "#   thresholds on the held-out test split ({} = beat the class-prior baseline); slices (metrics per\n"
    "#   group, numeric columns cut into bins); behaviour tests (invariance, directional, golden)",
    "columns": "per column: dtype float|int|category|string|bool, nullable, min/max, allowed + on_unseen,\n"
    "# regex, feature (false = id/text), not_constant, max_abs_z, severity overrides per rule",
}


def save_contract(contract: Contract, path: str | Path) -> None:
    """Write the contract as commented YAML that :func:`load_contract` reads back."""
    data = contract_to_dict(contract)
    parts = [f"# Data contract '{contract.name}'. Rules fail with their severity: block | warn | quarantine.\n"]
    for key, value in data.items():
        if key in _COMMENTS:
            parts.append(f"\n# {_COMMENTS[key]}\n")
        style = None if isinstance(value, dict | list) else False  # flow style for leaf collections only
        parts.append(yaml.safe_dump({key: value}, sort_keys=False, default_flow_style=style, width=110))
    Path(path).write_text("".join(parts), encoding="utf-8")


def load_contract(path: str | Path) -> Contract:
    path = Path(path)
    if not path.is_file():
        raise ContractError(f"contract file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ContractError(f"{path}: not valid YAML: {err}") from None
    return contract_from_dict(data)


# --- inference --------------------------------------------------------------


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


def infer_contract(frame: pd.DataFrame, target: str, *, name: str | None = None, margin: float = 0.1) -> Contract:
    """A draft contract from a reference frame: review and tighten it by hand."""
    if target not in frame.columns:
        raise ContractError(f"target: '{target}' is not a column of the frame")
    columns = []
    for col in frame.columns:
        rule = _infer_column(frame[col], str(col), margin)
        if col == target:
            rule = ColumnRule(name=rule.name, dtype=rule.dtype, feature=False, not_constant=False)
        columns.append(rule)
    shares = frame[target].value_counts(normalize=True)
    labels = sorted(_native(v) for v in shares.index)
    balance = {_native(k): (round(max(0.0, v - margin), 4), round(min(1.0, v + margin), 4)) for k, v in shares.items()}
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
    )


SLICE_MAX_LEVELS = 8  # more levels make slices too small to compare


def draft_evaluation(frame: pd.DataFrame, columns: list[ColumnRule]) -> dict[str, Any]:
    """No thresholds (the baseline gate applies), slices on up to three low-cardinality categoricals."""
    sliceable = [
        c.name for c in columns if c.feature and c.dtype == "category" and frame[c.name].nunique() <= SLICE_MAX_LEVELS
    ]
    min_size = max(15, len(frame) // 100)
    return {"thresholds": {}, "slices": {"columns": sliceable[:3], "min_size": min_size, "bins": 4}, "behaviour": []}


# --- reading files ----------------------------------------------------------


def _locate_bad_bytes(path: Path, encoding: str, sep: str, header: list[str]) -> str:
    """Say where the first undecodable byte is: line, column and byte offset."""
    data = path.read_bytes()
    try:
        data.decode(encoding)
    except UnicodeDecodeError as err:
        pos = err.start
        line_start = data.rfind(b"\n", 0, pos) + 1
        field_no = data.count(sep.encode(), line_start, pos)
        column = header[field_no] if field_no < len(header) else f"field {field_no + 1}"
        line_no = data.count(b"\n", 0, pos) + 1
        return f"byte 0x{data[pos]:02x} at offset {pos} (line {line_no}, column '{column}')"
    return "undecodable bytes"


def _check_last_line(path: Path, sep: str, n_fields: int, header: list[str], encoding: str) -> None:
    """A last line with fewer fields than the header means the file was cut short."""
    import csv

    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - (1 << 16)))
        tail = handle.read().decode(encoding, errors="replace")
    lines = [line for line in tail.splitlines() if line.strip()]
    if not lines:
        return
    parsed = next(csv.reader([lines[-1]], delimiter=sep, skipinitialspace=True))
    if len(parsed) < n_fields:
        raise DataReadError(
            f"{path}: last line has {len(parsed)} of {n_fields} fields (truncated file?); "
            f"column '{header[len(parsed)]}' and after are missing"
        )


def _read_csv(path: Path, opts: ReadOptions, expected: list[str] | None) -> pd.DataFrame:
    sep = opts.delimiter or ","
    with open(path, "rb") as handle:
        if not handle.read(4096).strip():
            raise DataReadError(f"{path}: file is empty")
    try:
        with warnings.catch_warnings():  # extra fields: pandas only warns and drops data
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                path,
                sep=sep,
                na_values=opts.na_values,
                keep_default_na=True,
                skipinitialspace=opts.strip_whitespace,
                encoding=opts.encoding,
                index_col=False,
                low_memory=False,
            )
    except pd.errors.EmptyDataError:
        raise DataReadError(f"{path}: file is empty") from None
    except UnicodeDecodeError:
        with open(path, "rb") as handle:
            first = handle.readline().decode(opts.encoding, errors="replace")
        header = [h.strip() for h in first.rstrip("\r\n").split(sep)]
        where = _locate_bad_bytes(path, opts.encoding, sep, header)
        raise DataReadError(f"{path}: not valid {opts.encoding}: {where}") from None
    except pd.errors.ParserError as err:
        raise DataReadError(f"{path}: malformed CSV: {err}") from None
    except pd.errors.ParserWarning:
        raise DataReadError(f"{path}: malformed CSV: some rows have more fields than the header") from None
    frame.columns = _unique_names([str(c).strip() for c in frame.columns])
    if expected is not None and not set(frame.columns) & set(expected):
        header = " ".join(map(str, frame.columns))
        likely = [d for d in (",", ";", "\t", "|") if d != sep and d in header]
        hint = f"; the header looks {likely[0]!r}-separated" if likely else ""
        raise DataReadError(
            f"{path}: none of the contract's columns were found with delimiter {sep!r}: wrong delimiter? "
            f"(header parsed as {list(frame.columns)[:5]}{hint})"
        )
    if len(frame):
        _check_last_line(path, sep, frame.shape[1], list(frame.columns), opts.encoding)
    return frame


def _unique_names(names: list[str]) -> list[str]:
    """Header names made unique the way pandas does it (``id``, ``id.1``): it only does so for
    exact repeats, and stripping can make two names equal ("id" and "id "). Two equal names
    would make ``frame[name]`` a frame and crash normalising; a renamed copy is reported by
    the ``extra_columns`` rule instead."""
    seen: set[str] = set()
    out = []
    for name in names:
        unique, n = name, 0
        while unique in seen:
            n += 1
            unique = f"{name}.{n}"
        seen.add(unique)
        out.append(unique)
    return out


def _is_text(series: pd.Series) -> bool:
    """The string dtype, or objects that are all str. An object column of Python bools (how
    pandas reads True/False with blanks) is not text: it must become "True"/"False" strings,
    or a category contract drafted from that very file rejects it."""
    if pd.api.types.is_string_dtype(series):
        return True
    return pd.api.types.is_object_dtype(series) and pd.api.types.infer_dtype(series, skipna=True) == "string"


# What a bool column may hold in a file (compared lower-cased and stripped; numbers by value).
BOOL_WORDS: dict[Any, bool] = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}
BOOL_WORDS |= {1: True, 0: False}


def _cast(series: pd.Series, dtype: str) -> pd.Series:
    """Cast to the declared dtype; values that do not fit leave the column as it is."""
    # ``dtype in``: numpy reads ``float64 == None`` as true, which returned float columns declared
    # bool/category/string uncast (1.0/0.0/blank flags, numeric codes with a blank).
    if dtype in _NUMPY_DTYPE and isinstance(series.dtype, np.dtype) and series.dtype == _NUMPY_DTYPE[dtype]:
        return series  # already what the cast below would produce: skip its full-column passes
    if series.isna().all():
        return series
    if dtype in ("float", "int"):
        if pd.api.types.is_bool_dtype(series):
            return series
        numbers = series if pd.api.types.is_numeric_dtype(series) else pd.to_numeric(series, errors="coerce")
        if numbers.notna().sum() < series.notna().sum():
            return series  # some values are not numbers: the dtype rule reports them
        integral = dtype == "int" and numbers.notna().all() and (numbers % 1 == 0).all()
        return numbers.astype("int64") if integral else numbers.astype("float64")
    if dtype == "bool":
        if pd.api.types.is_bool_dtype(series):
            return series
        # Numbers are matched by value: a 1/0 column with a blank is read as 1.0/0.0.
        keys = series if pd.api.types.is_numeric_dtype(series) else series.astype("str").str.strip().str.lower()
        mapped = keys.map(BOOL_WORDS).where(series.notna())
        if mapped.notna().sum() < series.notna().sum():
            return series  # some values are not booleans: the dtype rule reports them
        # Blanks stay missing (nullable "boolean"), so not_null/null_fraction judge them, not dtype.
        return mapped.astype("boolean") if mapped.isna().any() else mapped.astype(bool)
    if _is_text(series):
        return series
    if pd.api.types.is_float_dtype(series) and (series.dropna() % 1 == 0).all():
        series = series.astype("Int64")
    return series.astype("str").where(series.notna())


def _clean_text(series: pd.Series, opts: ReadOptions, suffix: str | None) -> pd.Series:
    """Strip whitespace, blank missing-value tokens and cut the label suffix of a text column.

    For the pandas string dtype the decision is made on the distinct values (a few dozen for a
    category, against millions of rows) and each step runs over the rows only when some value
    needs it; a clean column comes back as it is, uncopied. Object columns always take every step,
    as before: stripping is also what turns them into the string dtype.
    """
    strip = opts.strip_whitespace
    if isinstance(series.dtype, pd.StringDtype):
        values = pd.Series(series.unique(), dtype=series.dtype)
        stripped = values.str.strip() if strip else values
        strip = strip and not stripped.equals(values)
        tokens = bool(opts.strip_whitespace and stripped.isin(opts.na_values).any())
        suffix = suffix if suffix and stripped.str.endswith(suffix).fillna(False).any() else None
    else:
        tokens = strip
    if strip:
        series = series.str.strip()
    if tokens:
        series = series.where(~series.isin(opts.na_values))
    if suffix:
        series = series.str.removesuffix(suffix)
    return series


def normalise(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """Apply reading options and declared dtypes to a freshly read frame (returns a new frame).

    Columns that already have what the contract asks for are passed through without a copy.
    """
    opts = contract.reading
    rules = {c.name: c for c in contract.columns}
    out = {}
    for col in frame.columns:
        s = frame[col]
        if pd.api.types.is_string_dtype(s):  # object columns count only if every value is a str
            suffix = opts.label_strip_suffix if col == contract.target else None
            s = _clean_text(s, opts, suffix)
        rule = rules.get(col)
        out[col] = _cast(s, rule.dtype) if rule is not None else s
    # copy=False: the columns are new Series or unchanged ones; copy-on-write keeps the input safe.
    return pd.DataFrame(out, index=frame.index, copy=False)


def model_frame(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """The columns a model sees: the contract's features present in ``frame``, then the target.

    Columns marked ``feature: false`` (ids, free text) are validated but never trained on. Text
    features the contract declares ``category`` become pandas categoricals: the same values (one-hot
    encoded identically; MLflow infers the same string schema) held as small integer codes, so
    splitting and encoding millions of rows moves bytes, not strings (5M Adult rows: about 750 MB
    less, and a split and a fit that are each tens of seconds faster).
    """
    features = [c for c in contract.feature_columns() if c in frame.columns]
    out = frame[[*features, contract.target]]
    categorical = [c for c in features if contract.column(c).dtype == "category" and _is_str(out[c])]
    return out.astype(dict.fromkeys(categorical, "category")) if categorical else out


def _is_str(series: pd.Series) -> bool:
    return isinstance(series.dtype, pd.StringDtype)


def _parquet_columns(path: Path, contract: Contract) -> list[str] | None:
    """The columns to read: all of them (None) when extra columns are a rule to report, else the contract's."""
    if not contract.allow_extra_columns:
        return None
    import pyarrow.parquet as pq

    wanted = set(contract.column_names())
    return [name for name in pq.read_schema(path).names if name in wanted]  # file order; reads the footer only


def read_table(path: str | Path, reading: ReadOptions) -> pd.DataFrame:
    """Read a CSV or Parquet file with reading options only (no contract yet: used to draft one)."""
    path = Path(path)
    if not path.is_file():
        raise DataReadError(f"{path}: file not found")
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    return _read_csv(path, reading, None)


def read_with_contract(path: str | Path, contract: Contract) -> pd.DataFrame:
    """Read a CSV or Parquet file with the contract's reading options and dtypes.

    Raises DataReadError for files that cannot be read as data (empty, header
    only, wrong delimiter, undecodable bytes, truncated). Values that do not fit
    a declared numeric dtype stay as text so validation reports them. Parquet
    files are read column-wise: only the contract's columns when it allows extra
    ones (validation would ignore the rest anyway).
    """
    path = Path(path)
    if not path.is_file():
        raise DataReadError(f"{path}: file not found")
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(path, columns=_parquet_columns(path, contract))
        except Exception as err:  # pyarrow raises several unrelated types
            raise DataReadError(f"{path}: not a readable Parquet file: {err}") from None
    else:
        frame = _read_csv(path, contract.reading, contract.column_names())
    if len(frame) == 0:
        raise DataReadError(f"{path}: header only, no data rows (columns: {', '.join(map(str, frame.columns))})")
    return normalise(frame, contract)
