"""Validate prediction requests against a schema derived from the data contract.

Self-contained (pandas and numpy only): it is copied into every bento beside the
service, so the service validates exactly what the pipeline validated.

A schema is plain data: ``{"features": [{"name", "dtype", "nullable", "min", "max",
"allowed"}, ...], "ignored": [name, ...]}`` with dtype ``float``, ``int``, ``string`` or
``bool``. ``ignored`` names the dataset's other columns (ids, keys, the target): a request row
exported with them is accepted and they are dropped; any other unknown key is refused. Clean
columns take a vectorised fast path; anything suspicious is re-checked value by
value so the error names the record and the field.
"""

from __future__ import annotations

import functools
import math
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd

# Larger magnitudes are data errors, and they overflow float32 models (torch) to inf.
MAX_ABS_NUMBER = 1e15
_NUMBER_TYPES = frozenset({int, float})
_STRING_DTYPES = {"category": "string", "string": "string"}


class RequestError(ValueError):
    """A request does not fit the schema; ``field`` names the offending field."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def _spec(name: str, dtype: str, nullable: bool, low=None, high=None, allowed=None) -> dict[str, Any]:
    return {"name": name, "dtype": dtype, "nullable": nullable, "min": low, "max": high, "allowed": allowed}


def schema_from_frame(frame: pd.DataFrame, feature_columns: list[str]) -> dict[str, Any]:
    """A permissive schema (types and nullability only) when no contract is configured; the frame's
    other columns (the target, ids) are the ones a request may carry and have ignored."""
    features = []
    for col in feature_columns:
        numeric = pd.api.types.is_numeric_dtype(frame[col]) and frame[col].dtype != bool
        features.append(_spec(col, "float" if numeric else "string", bool(frame[col].isna().any())))
    return {"features": features, "ignored": [str(c) for c in frame.columns if c not in set(feature_columns)]}


def _severity(rule: Any, kind: str) -> str:
    """Severity of rule ``kind`` ("range" or "allowed") on a duck-typed contract column rule."""
    severity_of = getattr(rule, "severity_of", None)
    if callable(severity_of):
        return str(severity_of(kind))
    if kind == "allowed" and getattr(rule, "on_unseen", None) is not None:
        return str(rule.on_unseen)
    overrides = getattr(rule, "severity", None)
    if isinstance(overrides, dict):
        return str(overrides.get(kind, "block"))
    return str(overrides) if isinstance(overrides, str) else "block"


def schema_from_contract(contract: Any, feature_columns: list[str]) -> dict[str, Any]:
    """The request schema for ``feature_columns`` from a data contract.

    Duck-typed: ``contract.columns`` holds rules with ``name``, ``dtype``, ``nullable``,
    ``min``, ``max`` and ``allowed``. Bounds and allowed sets are enforced only where the
    contract blocks on them (a ``warn`` rule must not turn a request away). The contract's other
    columns (``feature: false`` ids and keys, the target) are ``ignored``: accepted in a request, dropped.
    """
    rules = {getattr(rule, "name", None): rule for rule in getattr(contract, "columns", ())}
    features = []
    for col in feature_columns:
        rule = rules.get(col)
        if rule is None:
            raise ValueError(f"feature column {col!r} has no rule in the data contract")
        dtype = str(getattr(rule, "dtype", "float"))
        dtype = _STRING_DTYPES.get(dtype, dtype)
        if dtype not in ("float", "int", "string", "bool"):
            raise ValueError(f"feature column {col!r}: unsupported dtype {dtype!r}")
        low, high, allowed = (
            getattr(rule, "min", None),
            getattr(rule, "max", None),
            getattr(rule, "allowed", None),
        )
        if dtype not in ("float", "int") or _severity(rule, "range") != "block":
            low = high = None
        if allowed is None or dtype in ("float", "int") or _severity(rule, "allowed") != "block":
            allowed = None
        features.append(
            _spec(
                col,
                dtype,
                bool(getattr(rule, "nullable", False)),
                None if low is None else float(low),
                None if high is None else float(high),
                None if allowed is None else list(allowed),
            )
        )
    ignored = [str(name) for name in rules if name is not None and name not in set(feature_columns)]
    return {"features": features, "ignored": ignored}


def records_from_body(body: Any) -> Any:
    """The ``records`` of a parsed request body ``{"records": [...]}``; other top-level keys are ignored."""
    if not isinstance(body, dict):
        raise RequestError('body: expected a JSON object {"records": [...]}, got ' + _json_type(body))
    if "records" not in body:
        raise RequestError('records: missing; send {"records": [{feature: value, ...}, ...]}', "records")
    return body["records"]


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    names = {list: "an array", str: "a string", int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_value(i: int, name: str, spec: dict[str, Any], value: Any) -> None:
    """Raise ``RequestError`` naming ``records[i].name`` if ``value`` does not fit ``spec``."""
    where, dtype = f"records[{i}].{name}", spec["dtype"]
    if value is None:
        if not spec.get("nullable", False):
            raise RequestError(f"{where}: null is not allowed", name)
        return
    if dtype in ("float", "int"):
        if not _is_number(value):
            raise RequestError(f"{where}: expected a number, got {type(value).__name__}", name)
        try:
            number = float(value)
        except OverflowError:
            raise RequestError(f"{where}: the number is too large", name) from None
        if not math.isfinite(number):
            raise RequestError(f"{where}: NaN and infinity are not allowed", name)
        if abs(number) > MAX_ABS_NUMBER:
            raise RequestError(f"{where}: {number:g} exceeds the magnitude limit {MAX_ABS_NUMBER:g}", name)
        if dtype == "int" and not number.is_integer():
            raise RequestError(f"{where}: expected an integer, got {number:g}", name)
        low, high = spec.get("min"), spec.get("max")
        if (low is not None and number < low) or (high is not None and number > high):
            raise RequestError(f"{where}: {number:g} is outside [{low}, {high}]", name)
    elif dtype == "bool":
        if not isinstance(value, bool):
            raise RequestError(f"{where}: expected true or false, got {type(value).__name__}", name)
    else:
        if not isinstance(value, str):
            raise RequestError(f"{where}: expected a string, got {type(value).__name__}", name)
        allowed = spec.get("allowed")
        if allowed is not None and value not in allowed:
            shown = ", ".join(map(repr, allowed[:10])) + (f" and {len(allowed) - 10} more" if len(allowed) > 10 else "")
            raise RequestError(f"{where}: {value[:80]!r} is not one of the allowed values ({shown})", name)


def _column(name: str, spec: dict[str, Any], values: list[Any]) -> np.ndarray:
    """Validate one column value by value (first error wins) and return it as an array."""
    dtype = spec["dtype"]
    if dtype in ("float", "int"):
        for i, value in enumerate(values):
            _check_value(i, name, spec, value)
        arr = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
        return arr.astype(np.int64) if dtype == "int" and not np.isnan(arr).any() else arr
    wanted = bool if dtype == "bool" else str
    allowed = spec.get("allowed")
    fast = set(map(type, values)) == {wanted} and (allowed is None or set(values) <= set(allowed))
    if not fast:
        for i, value in enumerate(values):
            _check_value(i, name, spec, value)
    return np.array(values, dtype=object)


class RequestValidator:
    """A schema compiled once: ``validator(records)`` is ``validate_columns(records, schema, ...)``.

    The service builds one at startup, so a request pays only for the checks themselves.
    """

    def __init__(self, schema: dict[str, Any], *, max_batch: int) -> None:
        self.features = list(schema["features"])
        self.max_batch = max_batch
        self.names = [f["name"] for f in self.features]
        self.expected = set(self.names)
        self.ignored = frozenset(schema.get("ignored") or ()) - self.expected
        self.numeric = [f for f in self.features if f["dtype"] in ("float", "int")]
        numeric_names = [f["name"] for f in self.numeric]
        self.position = {name: j for j, name in enumerate(numeric_names)}
        self.row = itemgetter(*numeric_names) if len(numeric_names) > 1 else None
        self.low = np.array([-np.inf if f.get("min") is None else f["min"] for f in self.numeric], dtype=np.float64)
        self.high = np.array([np.inf if f.get("max") is None else f["max"] for f in self.numeric], dtype=np.float64)
        self.ints = [j for j, f in enumerate(self.numeric) if f["dtype"] == "int"]
        self.floats_only = all(f["dtype"] == "float" for f in self.features)

    def __call__(self, records: Any) -> dict[str, np.ndarray]:
        """Validate a list of records; return one array per feature, in schema order."""
        if not isinstance(records, list):
            raise RequestError("records: expected a list of objects", "records")
        if not records:
            raise RequestError("records: the batch is empty", "records")
        if len(records) > self.max_batch:
            raise RequestError(f"records: {len(records)} records exceed the limit of {self.max_batch}", "records")
        expected, ignored = self.expected, self.ignored
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                raise RequestError(f"records[{i}]: expected an object keyed by feature name", "records")
            if record.keys() != expected:
                missing = [k for k in self.names if k not in record]
                if missing:
                    raise RequestError(f"records[{i}]: missing field '{missing[0]}'", missing[0])
                # the features are all there: the other keys must be contract columns (read, never used)
                unknown = sorted(str(k) for k in record if k not in expected and k not in ignored)
                if unknown:
                    raise RequestError(f"records[{i}]: unknown field '{unknown[0][:80]}'", unknown[0][:80])
        block = self._numeric_block(records) if self.numeric else None
        if block is not None and self.floats_only:
            return dict(zip(self.names, block.T, strict=True))
        columns = {}
        for spec in self.features:
            name = spec["name"]
            if block is not None and name in self.position:
                column = block[:, self.position[name]]
                columns[name] = column.astype(np.int64) if spec["dtype"] == "int" else column
            else:
                columns[name] = _column(name, spec, [r[name] for r in records])
        return columns

    def _numeric_block(self, records: list[dict]) -> np.ndarray | None:
        """All numeric features as one float64 matrix when every value is a plain in-range number.

        One vectorised check for the whole request; ``None`` sends the caller to the
        value-by-value path, which names the first bad field.
        """
        if self.row is None:
            name = self.numeric[0]["name"]
            rows = [(r[name],) for r in records]
        else:
            rows = list(map(self.row, records))
        if not set(map(type, chain.from_iterable(rows))) <= _NUMBER_TYPES:
            return None
        try:
            arr = np.array(rows, dtype=np.float64).reshape(len(records), len(self.numeric))
        except OverflowError:
            return None
        if not ((np.abs(arr) <= MAX_ABS_NUMBER) & (arr >= self.low) & (arr <= self.high)).all():
            return None  # also catches NaN and infinity: every comparison with NaN is False
        if self.ints and not (arr[:, self.ints] == np.round(arr[:, self.ints])).all():
            return None
        return arr


def validate_columns(records: Any, schema: dict[str, Any], *, max_batch: int) -> dict[str, np.ndarray]:
    """Validate a list of records; return one array per feature, in schema order."""
    return RequestValidator(schema, max_batch=max_batch)(records)


@functools.lru_cache(maxsize=64)
def _column_index(names: tuple[str, ...]) -> pd.Index:
    """Column labels as a plain object Index, built once: pandas' default string Index costs
    more to build and to read back per frame than the rest of a small request."""
    return pd.Index(names, dtype=object)


def frame_from_columns(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """A DataFrame in ``columns`` order; float columns go in as one 2-D block (much faster)."""
    floats = tuple(k for k, v in columns.items() if v.dtype == np.float64)
    # np.array stacks equal-length vectors as rows; .T is the (rows, columns) view pandas keeps as is
    block = np.array([columns[k] for k in floats]).T if floats else None
    frame = pd.DataFrame(block, columns=_column_index(floats), copy=False)
    if len(floats) == len(columns):
        return frame
    for name, values in columns.items():
        if name not in frame.columns:
            frame[name] = values
    return frame[list(columns)]


def validate_records(records: Any, schema: dict[str, Any], *, max_batch: int) -> pd.DataFrame:
    """Return a typed DataFrame in schema column order, or raise ``RequestError``."""
    return frame_from_columns(validate_columns(records, schema, max_batch=max_batch))
