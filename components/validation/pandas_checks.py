"""Structural and aggregate checks run in vectorised pandas.

Rules Great Expectations expresses badly or slowly: missing and extra columns,
dtypes, constant columns, class balance and the share of quarantined rows.
Their results carry an ``expectation`` of ``pandas.<rule>``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from components.data.contract import ColumnRule, Contract
from components.data.reading import BOOL_WORDS
from components.validation.report import PARTIAL_EXAMPLES, RuleResult, jsonable

CONSTANT_PROBE_ROWS = 1000


def _pandas_result(rule: str, column: str | None, severity: str, success: bool, observed: Any, **kw) -> RuleResult:
    return RuleResult(rule, column, f"pandas.{rule}", severity, success, jsonable(observed), **kw)


def _dtype_result(series: pd.Series, col: ColumnRule) -> RuleResult:
    observed, bad = str(series.dtype), None
    text = pd.api.types.is_string_dtype(series) or pd.api.types.is_object_dtype(series)
    if series.isna().all():
        ok = True
    elif col.numeric and pd.api.types.is_bool_dtype(series):
        ok = False
    elif col.numeric and pd.api.types.is_numeric_dtype(series):
        bad = series.notna() & (series % 1 != 0) if col.dtype == "int" and series.dtype.kind == "f" else None
        ok = bad is None or not bad.any()
    elif col.numeric:
        bad = pd.to_numeric(series, errors="coerce").isna() & series.notna()
        ok = False
    elif col.dtype == "bool":
        ok = pd.api.types.is_bool_dtype(series)
        # Reading left the column uncast because of these values: name them, as for numbers.
        words = series if pd.api.types.is_numeric_dtype(series) else series.astype("str").str.strip().str.lower()
        bad = None if ok else series.notna() & ~words.isin(list(BOOL_WORDS))
    else:
        ok = text or isinstance(series.dtype, pd.CategoricalDtype)
    count = int(bad.sum()) if bad is not None and not ok else 0
    examples = series[bad].head(PARTIAL_EXAMPLES).tolist() if count else []
    pct = 100.0 * count / max(len(series), 1)
    return _pandas_result(
        "dtype",
        col.name,
        col.severity_of("dtype"),
        ok,
        f"{observed}, expected {col.dtype}",
        unexpected_count=count,
        unexpected_percent=pct,
        examples=jsonable(examples),
        expected={"dtype": col.dtype},
    )


def structural_checks(frame: pd.DataFrame, contract: Contract) -> tuple[list[RuleResult], set[str]]:
    """Missing and extra columns, dtypes; returns the results and the columns usable for value rules."""
    results = []
    if not contract.allow_extra_columns:
        sev = contract.severity_of("extra_columns")
        for name in frame.columns:
            if contract.column(name) is None:
                results.append(_pandas_result("extra_columns", name, sev, False, "not in the contract"))
    usable = set()
    for col in contract.columns:
        if col.name not in frame.columns:
            results.append(_pandas_result("exists", col.name, col.severity_of("exists"), False, "missing"))
        else:
            result = _dtype_result(frame[col.name], col)
            results.append(result)
            if result.success:
                usable.add(col.name)
    return results, usable


def _varies(values: pd.Series) -> bool:
    """Whether the non-null ``values`` hold two different values."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return bool(values.min() != values.max())
    return not bool((values == values.iloc[0]).all())


def _is_constant(series: pd.Series) -> tuple[bool, Any]:
    # Most columns vary within their first rows: decide there before touching the whole column.
    head = series.iloc[:CONSTANT_PROBE_ROWS].dropna()
    if len(head) >= 2 and _varies(head):
        return False, head.iloc[0]
    values = head if len(series) <= CONSTANT_PROBE_ROWS else series.dropna()
    if len(values) < 2:
        return False, None
    return not _varies(values), values.iloc[0]


def aggregate_checks(frame: pd.DataFrame, contract: Contract, usable: set[str]) -> list[RuleResult]:
    """Constant columns and class balance: cheap in pandas, slow or awkward in GX."""
    results = []
    for col in contract.columns:
        if col.not_constant and col.name in usable and len(frame) > 1:
            constant, value = _is_constant(frame[col.name])
            observed = f"every value is {value!r}" if constant else "varies"
            results.append(
                _pandas_result("not_constant", col.name, col.severity_of("not_constant"), not constant, observed)
            )
    if contract.class_balance and contract.target in usable:
        shares = frame[contract.target].value_counts(normalize=True)
        observed = {label: round(float(shares.get(label, 0.0)), 4) for label in contract.class_balance}
        off = [k for k, (lo, hi) in contract.class_balance.items() if not lo <= observed[k] <= hi]
        bounds = {k: list(v) for k, v in contract.class_balance.items()}
        results.append(
            _pandas_result(
                "class_balance",
                contract.target,
                contract.severity_of("class_balance"),
                not off,
                {"shares": observed, "bounds": bounds},
                examples=jsonable(off),
                expected=jsonable({"shares": bounds}),
            )
        )
    return results


def quarantine_share_result(fraction: float, n_quarantined: int, contract: Contract) -> RuleResult:
    """Whether the share of quarantined rows stays within the contract's limit."""
    return _pandas_result(
        "quarantine_share",
        None,
        contract.severity_of("quarantine_share"),
        fraction <= contract.max_quarantine_fraction,
        {"fraction": round(fraction, 6), "limit": contract.max_quarantine_fraction},
        unexpected_count=n_quarantined,
        unexpected_percent=100.0 * fraction,
        expected={"max": contract.max_quarantine_fraction},
    )
