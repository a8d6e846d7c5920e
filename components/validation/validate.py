"""The validation gate: run a Contract against a frame and decide.

``validate_frame`` runs the structural checks (pandas), the value rules (Great
Expectations, see ``gx_engine``) and the aggregate checks (pandas), moves rows
failing ``quarantine``-severity rules out of the returned frame, adds drift
against a reference frame when one is given, and returns a ``ValidationReport``.
``basic_contract`` is the minimal contract used when none is configured.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from components.data.contract import ColumnRule, Contract
from components.data.contract_inference import infer_dtype
from components.data.contract_sections import task_from_labels
from components.model.tasks import REGRESSION
from components.validation.drift import drift_report
from components.validation.gx_engine import Check, compile_checks, failing_rows, run_checks
from components.validation.pandas_checks import aggregate_checks, quarantine_share_result, structural_checks
from components.validation.report import RuleResult, ValidationReport, jsonable

log = logging.getLogger(__name__)

QUARANTINE_COLUMN = "_quarantine_rule"


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


def _drift_results(drift: dict, contract: Contract) -> list[RuleResult]:
    results = []
    for name, stats in drift["columns"].items():
        observed = {k: v for k, v in stats.items() if k in ("psi", "ks", "new_category_share", "new_categories")}
        expected = jsonable({k: v for k, v in stats.items() if k in ("threshold", "new_category_threshold")})
        success = not stats["drifted"]
        sev = contract.drift.severity
        results.append(RuleResult("drift", name, "drift.psi", sev, success, jsonable(observed), expected=expected))
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
    results.append(quarantine_share_result(fraction, len(rejected), contract))
    drift = None
    if reference is not None:
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


def basic_contract(
    frame: pd.DataFrame,
    target: str,
    *,
    min_rows: int = 1,
    max_null_fraction: float = 0.0,
    task: str | None = None,
) -> Contract:
    """Minimal checks when no contract file is configured.

    The frame's columns must be there with no more nulls than allowed, and there must be
    ``min_rows`` rows. A classification target must hold at least two labels (three for
    ``task`` multiclass); a regression target must be numeric. ``task`` None: the labels
    decide, as for a contract without one (more than two is multiclass).
    """
    nullable = max_null_fraction > 0
    regression = task == REGRESSION
    columns = [
        ColumnRule(
            name=str(name),
            # a regression target must be a number: declared float, text in it fails the dtype rule
            dtype="float" if regression and name == target else infer_dtype(frame[name]),
            nullable=nullable and name != target,
            max_null_fraction=max_null_fraction if nullable and name != target else None,
            feature=name != target,
            not_constant=False,
        )
        for name in frame.columns
    ]
    if target not in frame.columns:
        columns.append(ColumnRule(name=target, dtype="float" if regression else "category", feature=False,
                                  not_constant=False))  # fmt: skip
    labels = []
    if target in frame and not regression:
        labels = sorted(v.item() if hasattr(v, "item") else v for v in frame[target].dropna().unique())
        if task is not None and task_from_labels(labels) != task:
            labels = []  # too few or too many for the task: min_classes, then the run's target check, say so
    return Contract(
        name="basic",
        columns=tuple(columns),
        target=target,
        labels=labels,
        min_rows=min_rows,
        allow_extra_columns=True,
        max_quarantine_fraction=0.0,
        task=task,
    )
