"""Contract rules compiled to Great Expectations checks, and running them.

``compile_checks`` turns a contract's value rules (nulls, ranges, allowed sets,
regexes, keys, a classification target's labels and classes, row count) into
``Check`` records; ``build_suite`` makes a GX 1.x ExpectationSuite of them and
``run_checks`` validates a frame through one ephemeral GX context per process.
Row-level checks GX runs slowly (z-score outliers) are marked ``pandas.*`` and
run here in pandas; ``failing_rows`` gives the rows a row-level check rejects,
which is also what quarantine removes.

``great_expectations`` is imported inside the functions that use it: it is the
slowest import of the stack, which commands that never validate should not pay.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass
from typing import Any

import pandas as pd

from components.data.contract import ColumnRule, Contract
from components.data.contract_sections import min_classes
from components.validation.report import PARTIAL_EXAMPLES, RuleResult, jsonable

# The GX context and its batch definition are shared per process; validations must not interleave on it.
_GX_LOCK = threading.Lock()


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
    # A regression target has no labels: its own column rules (not_null, range) are all it gets.
    if target in usable and contract.is_classification:
        if contract.labels:
            kwargs = {"column": target, "value_set": list(contract.labels)}
            checks.append(Check("labels", target, sev("labels"), "expect_column_values_to_be_in_set", kwargs))
        kwargs = {"column": target, "min_value": min_classes(contract.task)}
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
    from great_expectations.execution_engine import pandas_execution_engine

    # Its INFO lines are noise here ("Created temporary directory ..."); one of its modules sets its own
    # logger to INFO when imported, so that one is quieted by name.
    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    context.enable_analytics(False)
    # GX fingerprints every in-memory frame under 1 GB by hashing all of it, twice per validation,
    # which dominates large validations. We never use that batch marker, so skip it.
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


# Check kwargs as the report names them; "column"/"column_list" say where, not what is expected.
_EXPECTED_NAMES = {"min_value": "min", "max_value": "max", "value_set": "allowed", "threshold": "max_abs_z"}


def expected_of(check: Check) -> dict | None:
    """What ``check`` expects, as plain JSON (``{"min": 0, "max": 120}``, ``{"allowed": [...]}``), or None."""
    out = {_EXPECTED_NAMES.get(k, k): v for k, v in check.kwargs.items() if k not in ("column", "column_list")}
    if check.rule == "null_fraction":
        out = {"min_non_null_share": out.pop("min")}
    elif check.rule == "not_null":
        out = {"nulls": "none"}
    elif check.rule == "unique_keys":
        out = {"values": "unique"}
    out = {k: v for k, v in out.items() if v is not None}
    return jsonable(out) if out else None


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
        jsonable(examples),
        expected_of(check),
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
        observed=jsonable(f"error: {error}" if error else observed),
        unexpected_count=count,
        unexpected_percent=float(info.get("unexpected_percent") or 0.0),
        examples=jsonable(list(info.get("partial_unexpected_list") or [])),
        expected=expected_of(check),
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
            # makes that copy narrow (benchmarks/RESULTS.md, validation).
            part = frame[list(columns)] if columns else frame
            batch = definition.get_batch(batch_parameters={"dataframe": part})
            outcome = batch.validate(build_suite(contract, [checks[i] for i in idx]), result_format=result_format)
            by_index |= {idx[r.expectation_config.meta["check"]]: r for r in outcome.results}
    return [
        _from_gx(c, by_index[i], len(frame)) if i in by_index else _row_check_in_pandas(frame, c)
        for i, c in enumerate(checks)
    ]


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
