"""Validate prediction requests against a schema derived from the data contract.

Self-contained (pandas and numpy only): it is copied into every bento beside the
service, so the service validates exactly what the pipeline validated.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


class RequestError(ValueError):
    """A request does not fit the schema; ``field`` names the offending field."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def schema_from_frame(frame: pd.DataFrame, feature_columns: list[str]) -> dict[str, Any]:
    """A permissive schema (types and nullability only) when no contract is configured."""
    features = []
    for col in feature_columns:
        numeric = pd.api.types.is_numeric_dtype(frame[col]) and frame[col].dtype != bool
        features.append(
            {
                "name": col,
                "dtype": "float" if numeric else "string",
                "nullable": bool(frame[col].isna().any()),
                "min": None,
                "max": None,
                "allowed": None,
            }
        )
    return {"features": features}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_column(name: str, spec: dict[str, Any], values: list[Any]) -> None:
    for i, value in enumerate(values):
        if value is None:
            if not spec.get("nullable", False):
                raise RequestError(f"records[{i}].{name}: null is not allowed", name)
            continue
        if spec["dtype"] in ("float", "int"):
            if not _is_number(value):
                raise RequestError(f"records[{i}].{name}: expected a number, got {type(value).__name__}", name)
            if not math.isfinite(value):
                raise RequestError(f"records[{i}].{name}: NaN and infinity are not allowed", name)
            if spec["dtype"] == "int" and not float(value).is_integer():
                raise RequestError(f"records[{i}].{name}: expected an integer, got {value}", name)
            low, high = spec.get("min"), spec.get("max")
            if (low is not None and value < low) or (high is not None and value > high):
                raise RequestError(f"records[{i}].{name}: {value} is outside [{low}, {high}]", name)
        else:
            if not isinstance(value, str):
                raise RequestError(f"records[{i}].{name}: expected a string, got {type(value).__name__}", name)
            allowed = spec.get("allowed")
            if allowed is not None and value not in allowed:
                raise RequestError(f"records[{i}].{name}: {value!r} is not one of the allowed values", name)


def validate_records(records: Any, schema: dict[str, Any], *, max_batch: int) -> pd.DataFrame:
    """Return a typed DataFrame in schema column order, or raise ``RequestError``."""
    if not isinstance(records, list):
        raise RequestError("records: expected a list of objects", "records")
    if not records:
        raise RequestError("records: the batch is empty", "records")
    if len(records) > max_batch:
        raise RequestError(f"records: {len(records)} records exceed the limit of {max_batch}", "records")
    features = schema["features"]
    expected = [f["name"] for f in features]
    expected_set = set(expected)
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise RequestError(f"records[{i}]: expected an object keyed by feature name", "records")
        if record.keys() != expected_set:
            missing = [k for k in expected if k not in record]
            if missing:
                raise RequestError(f"records[{i}]: missing field '{missing[0]}'", missing[0])
            unknown = sorted(k for k in record if k not in expected_set)
            raise RequestError(f"records[{i}]: unknown field '{unknown[0]}'", unknown[0])
    columns = {}
    for spec in features:
        name = spec["name"]
        values = [r[name] for r in records]
        _check_column(name, spec, values)
        if spec["dtype"] == "int" and None not in values:
            columns[name] = np.array(values, dtype=np.int64)
        elif spec["dtype"] in ("float", "int"):
            columns[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        else:
            columns[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(columns, columns=expected)
