"""The validation gate: run a Contract against a frame and decide.

Value rules compile to a Great Expectations 1.x ExpectationSuite run through an
ephemeral context. Structural and aggregate rules GX expresses badly or slowly
(missing or extra columns, dtype, constant columns, class balance, z-score
outliers) run in vectorised pandas and report with an ``expectation`` prefixed
``pandas.``. Row-level rules with severity ``quarantine`` move failing rows
out of the returned frame.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.data.contract import BOOL_WORDS, ColumnRule, Contract, infer_dtype

log = logging.getLogger(__name__)

PARTIAL_EXAMPLES = 5
CONSTANT_PROBE_ROWS = 1000
QUARANTINE_COLUMN = "_quarantine_rule"
_GX_LOCK = threading.Lock()


@dataclass(frozen=True)
class RuleResult:
    rule: str
    column: str | None
    expectation: str  # GX expectation type, or "pandas.<check>" for checks run in pandas
    severity: str
    success: bool
    observed: Any = None
    unexpected_count: int = 0
    unexpected_percent: float = 0.0
    examples: list = field(default_factory=list)

    def describe(self) -> str:
        where = f" on '{self.column}'" if self.column else ""
        examples = f", e.g. {self.examples[:3]}" if self.examples else ""
        return f"{self.rule}{where} (observed {_jsonable(self.observed)}{examples})"


@dataclass(frozen=True)
class ValidationReport:
    success: bool
    n_rows: int
    n_quarantined: int
    quarantine_fraction: float
    results: tuple[RuleResult, ...]
    drift: dict | None = None
    contract: str = ""

    def failures(self) -> list[RuleResult]:
        """Failed rules of severity block: any one of them rejects the data."""
        return [r for r in self.results if not r.success and r.severity == "block"]

    def warnings(self) -> list[RuleResult]:
        return [r for r in self.results if not r.success and r.severity == "warn"]

    def quarantined(self) -> list[RuleResult]:
        return [r for r in self.results if not r.success and r.severity == "quarantine"]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["results"] = [asdict(r) for r in self.results]
        return _jsonable(out)


class DataRejectedError(Exception):
    """The data broke block-severity rules; ``str()`` names each rule, column and the report."""

    def __init__(self, report: ValidationReport, report_path: str | Path | None = None) -> None:
        self.report = report
        self.report_path = report_path
        rules = "; ".join(r.describe() for r in report.failures()) or "no rule failed"
        where = f" See the report: {report_path}" if report_path else ""
        super().__init__(f"data rejected by contract '{report.contract}': {rules}.{where}")

    def __reduce__(self):  # picklable across processes (Prefect task results)
        return type(self), (self.report, self.report_path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | np.ndarray):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return None if value is pd.NA or value is pd.NaT else str(value)


# --- compiling a contract to checks -------------------------------------------


@dataclass(frozen=True)
class Check:
    """One GX expectation compiled from one contract rule."""

    rule: str
    column: str | None
    severity: str
    expectation: str
    kwargs: dict


def _column_checks(col: ColumnRule) -> list[Check]:
    checks: list[Check] = []

    def add(rule: str, expectation: str, **kwargs: Any) -> None:
        kwargs = {"column": col.name, **kwargs}
        checks.append(Check(rule, col.name, col.severity_of(rule), expectation, kwargs))

    if not col.nullable:
        add("not_null", "expect_column_values_to_not_be_null")
    elif col.max_null_fraction is not None:
        min_share = round(1 - col.max_null_fraction, 12)
        add("null_fraction", "expect_column_proportion_of_non_null_values_to_be_between", min_value=min_share)
    if col.numeric and (col.min is not None or col.max is not None):
        add("range", "expect_column_values_to_be_between", min_value=col.min, max_value=col.max)
    if col.allowed is not None:
        add("allowed", "expect_column_values_to_be_in_set", value_set=list(col.allowed))
    if col.regex is not None:
        add("regex", "expect_column_values_to_match_regex", regex=col.regex)
    if col.numeric and col.max_abs_z is not None:
        # GX's z-score expectation loops over every value in Python (a decimal check): pandas here.
        add("outliers", "pandas.outliers", threshold=col.max_abs_z)
    return checks


def compile_checks(contract: Contract, usable: set[str] | None = None) -> list[Check]:
    """The GX-expressible rules; value rules only for ``usable`` columns (present, right dtype)."""
    usable = set(contract.column_names()) if usable is None else usable
    checks = []
    for col in contract.columns:
        if col.name in usable:
            checks += _column_checks(col)
    sev = contract.severity_of
    rows = {"min_value": contract.min_rows, "max_value": contract.max_rows}
    checks.append(Check("row_count", None, sev("row_count"), "expect_table_row_count_to_be_between", rows))
    if contract.keys and set(contract.keys) <= usable:
        one = len(contract.keys) == 1
        exp = "expect_column_values_to_be_unique" if one else "expect_compound_columns_to_be_unique"
        kwargs = {"column": contract.keys[0]} if one else {"column_list": list(contract.keys)}
        checks.append(Check("unique_keys", ",".join(contract.keys), sev("unique_keys"), exp, kwargs))
    target = contract.target
    if target in usable:
        if contract.labels:
            kwargs = {"column": target, "value_set": list(contract.labels)}
            checks.append(Check("labels", target, sev("labels"), "expect_column_values_to_be_in_set", kwargs))
        kwargs = {"column": target, "min_value": 2}
        exp = "expect_column_unique_value_count_to_be_between"
        checks.append(Check("min_classes", target, sev("min_classes"), exp, kwargs))
    return checks


def build_suite(contract: Contract, checks: list[Check] | None = None):
    """A GX ExpectationSuite for the contract; ``meta.check`` indexes into ``checks``."""
    import great_expectations as gx

    checks = compile_checks(contract) if checks is None else checks
    configs = [
        {
            "type": c.expectation,
            "kwargs": c.kwargs,
            "meta": {"check": i, "rule": c.rule, "severity": c.severity},
        }
        for i, c in enumerate(checks)
        if not c.expectation.startswith("pandas.")
    ]
    # Passing all expectations at once skips add_expectation's quadratic duplicate scan.
    return gx.ExpectationSuite(name=f"contract-{contract.name}", expectations=configs)


@functools.cache
def _batch_definition():
    """One ephemeral GX context per process (progress bars and analytics off)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    context.enable_analytics(False)
    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its INFO lines are noise here
    # GX fingerprints every in-memory frame under 1 GB by hashing all of it, twice per validation
    # (~6 s at 5M rows with text columns). We never use that batch marker, so skip it.
    from great_expectations.execution_engine import pandas_execution_engine

    pandas_execution_engine.HASH_THRESHOLD = 0
    asset = context.data_sources.add_pandas("contract_validation").add_dataframe_asset("frame")
    return asset.add_batch_definition_whole_dataframe("whole_frame")


def _gx_error(result: Any) -> str | None:
    info = result.exception_info or {}
    infos = [info] if "raised_exception" in info else list(info.values())
    for item in infos:
        if isinstance(item, dict) and item.get("raised_exception"):
            return str(item.get("exception_message"))[:300]
    return None


def _row_check_in_pandas(frame: pd.DataFrame, check: Check) -> RuleResult:
    mask = failing_rows(frame, check)
    count = int(mask.sum())
    examples = frame.loc[mask, check.column].head(PARTIAL_EXAMPLES).tolist() if count else []
    observed = f"{count} of {len(frame)} rows unexpected"
    pct = 100.0 * count / max(len(frame), 1)
    return RuleResult(
        check.rule,
        check.column,
        check.expectation,
        check.severity,
        count == 0,
        observed,
        count,
        pct,
        _jsonable(examples),
    )


def _from_gx(check: Check, res: Any, n_rows: int) -> RuleResult:
    info = res.result or {}
    error = _gx_error(res)
    count = int(info.get("unexpected_count") or 0)
    observed = info.get("observed_value", f"{count} of {info.get('element_count', n_rows)} rows unexpected")
    return RuleResult(
        rule=check.rule,
        column=check.column,
        expectation=check.expectation,
        severity=check.severity,
        success=bool(res.success) and error is None,
        observed=_jsonable(f"error: {error}" if error else observed),
        unexpected_count=count,
        unexpected_percent=float(info.get("unexpected_percent") or 0.0),
        examples=_jsonable(list(info.get("partial_unexpected_list") or [])),
    )


def _groups_by_columns(checks: list[Check]) -> dict[tuple[str, ...], list[int]]:
    """GX checks grouped by the columns they read; table-level checks ride with the first group."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, c in enumerate(checks):
        if c.expectation.startswith("pandas."):
            continue
        cols = c.kwargs.get("column_list") or ([c.kwargs["column"]] if "column" in c.kwargs else [])
        groups.setdefault(tuple(cols), []).append(i)
    table = groups.pop((), [])
    if table:
        first = next(iter(groups), ())
        groups[first] = sorted(groups.get(first, []) + table)
    return groups


def run_checks(frame: pd.DataFrame, contract: Contract, checks: list[Check]) -> list[RuleResult]:
    """Run ``checks`` (GX expectations through GX, ``pandas.*`` ones in pandas); results in order."""
    result_format = {"result_format": "BASIC", "partial_unexpected_count": PARTIAL_EXAMPLES}
    by_index = {}
    with _GX_LOCK:
        definition = _batch_definition()
        for columns, idx in _groups_by_columns(checks).items():
            # GX filters the whole frame per column rule; giving it only the columns a group reads
            # makes that copy narrow (5M rows x 15 columns: 14.7 -> 4.9 CPU s).
            part = frame[list(columns)] if columns else frame
            batch = definition.get_batch(batch_parameters={"dataframe": part})
            outcome = batch.validate(build_suite(contract, [checks[i] for i in idx]), result_format=result_format)
            by_index |= {idx[r.expectation_config.meta["check"]]: r for r in outcome.results}
    return [
        _from_gx(c, by_index[i], len(frame)) if i in by_index else _row_check_in_pandas(frame, c)
        for i, c in enumerate(checks)
    ]


# --- checks run in pandas -------------------------------------------------------


def _pandas_result(rule: str, column: str | None, severity: str, success: bool, observed: Any, **kw) -> RuleResult:
    return RuleResult(rule, column, f"pandas.{rule}", severity, success, _jsonable(observed), **kw)


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
        examples=_jsonable(examples),
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
                examples=_jsonable(off),
            )
        )
    return results


# --- quarantine -----------------------------------------------------------------


def failing_rows(frame: pd.DataFrame, check: Check) -> pd.Series:
    """Rows that break a row-level check, computed in pandas from the check's own kwargs."""
    s, kw = frame[check.kwargs["column"]], check.kwargs
    if check.rule == "not_null":
        return s.isna()
    if check.rule == "range":
        low = s < kw["min_value"] if kw["min_value"] is not None else False
        high = s > kw["max_value"] if kw["max_value"] is not None else False
        return pd.Series(low | high, index=frame.index)
    if check.rule in ("allowed", "labels"):
        return s.notna() & ~s.isin(kw["value_set"])
    if check.rule == "regex":
        return s.notna() & ~s.astype("str").str.contains(kw["regex"])
    if check.rule == "outliers":
        z = (s - s.mean()) / s.std()
        return (z.abs() >= kw["threshold"]).fillna(False)
    raise ValueError(f"rule '{check.rule}' is not row-level")


def _write_frame(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


def quarantine(frame: pd.DataFrame, failed: list[Check], path: str | Path | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``frame`` into kept and quarantined rows; the latter name their rules."""
    masks = [(c, failing_rows(frame, c)) for c in failed]
    bad = np.logical_or.reduce([m.to_numpy(dtype=bool) for _, m in masks]) if masks else np.zeros(len(frame), bool)
    rejected = (frame[bad] if bad.any() else frame.iloc[:0]).copy()  # an all-False mask still costs a pass
    reasons = pd.Series("", index=rejected.index, dtype="str")
    for check, mask in masks:
        hit = mask.to_numpy(dtype=bool)[bad]
        reasons = reasons.where(~hit, reasons + f";{check.rule}:{check.column}")
    rejected[QUARANTINE_COLUMN] = reasons.str.lstrip(";")
    if path is not None:
        _write_frame(rejected, Path(path))
        log.info("quarantine: %d rows written to %s", len(rejected), path)
    # Nothing failed (the usual case): keep every row without copying; copy-on-write protects the input.
    return (frame[~bad] if bad.any() else frame.copy(deep=False)), rejected


# --- the gate --------------------------------------------------------------------


def _drift_results(drift: dict, contract: Contract) -> list[RuleResult]:
    results = []
    for name, stats in drift["columns"].items():
        observed = {k: v for k, v in stats.items() if k in ("psi", "ks", "new_category_share", "new_categories")}
        results.append(
            RuleResult("drift", name, "drift.psi", contract.drift.severity, not stats["drifted"], _jsonable(observed))
        )
    return results


def validate_frame(
    frame: pd.DataFrame,
    contract: Contract,
    *,
    reference: pd.DataFrame | None = None,
    quarantine_path: str | Path | None = None,
) -> tuple[ValidationReport, pd.DataFrame]:
    """Check ``frame`` against ``contract``; return the report and the rows that pass quarantine.

    The input frame is not modified. Drift against ``reference`` is computed on
    the kept rows when a reference is given.
    """
    n_rows = len(frame)
    results, usable = structural_checks(frame, contract)
    checks = compile_checks(contract, usable)
    check_results = run_checks(frame, contract, checks)
    results += check_results + aggregate_checks(frame, contract, usable)
    failed_q = [c for c, r in zip(checks, check_results, strict=True) if r.severity == "quarantine" and not r.success]
    kept, rejected = quarantine(frame, failed_q, quarantine_path)
    fraction = len(rejected) / n_rows if n_rows else 0.0
    results.append(
        _pandas_result(
            "quarantine_share",
            None,
            contract.severity_of("quarantine_share"),
            fraction <= contract.max_quarantine_fraction,
            {"fraction": round(fraction, 6), "limit": contract.max_quarantine_fraction},
            unexpected_count=len(rejected),
            unexpected_percent=100.0 * fraction,
        )
    )
    drift = None
    if reference is not None:
        from components.validation.drift import drift_report

        drift = drift_report(reference, kept, contract)
        results += _drift_results(drift, contract)
    success = not any(r.severity == "block" and not r.success for r in results)
    report = ValidationReport(success, n_rows, len(rejected), fraction, tuple(results), drift, contract.name)
    log.info(
        "validation of %d rows against '%s': %s (%d failed, %d warnings, %d rows quarantined)",
        n_rows,
        contract.name,
        "passed" if success else "REJECTED",
        len(report.failures()),
        len(report.warnings()),
        len(rejected),
    )
    return report, kept


def basic_contract(frame: pd.DataFrame, target: str, *, min_rows: int = 1, max_null_fraction: float = 0.0) -> Contract:
    """Minimal checks when no contract file is configured.

    The frame's columns must be there with no more nulls than allowed, the target
    must hold at least two labels, and there must be ``min_rows`` rows.
    """
    nullable = max_null_fraction > 0
    columns = [
        ColumnRule(
            name=str(name),
            dtype=infer_dtype(frame[name]),
            nullable=nullable and name != target,
            max_null_fraction=max_null_fraction if nullable and name != target else None,
            feature=name != target,
            not_constant=False,
        )
        for name in frame.columns
    ]
    if target not in frame.columns:
        columns.append(ColumnRule(name=target, dtype="category", feature=False, not_constant=False))
    labels = (
        sorted(v.item() if hasattr(v, "item") else v for v in frame[target].dropna().unique())
        if target in frame
        else []
    )
    return Contract(
        name="basic",
        columns=tuple(columns),
        target=target,
        labels=labels,
        min_rows=min_rows,
        allow_extra_columns=True,
        max_quarantine_fraction=0.0,
    )
