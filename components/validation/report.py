"""What a validation run reports: per-rule results, the report, the rejection error.

``RuleResult`` is one rule's outcome, ``ValidationReport`` the whole run (with its
JSON form), and ``DataRejectedError`` what the gate raises when block-severity
rules fail. ``jsonable`` turns observed values (numpy scalars, NaN, pandas NA)
into plain JSON values, so every result can be written as JSON as is.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# How many failing values a result keeps as examples (GX's partial_unexpected_count too).
PARTIAL_EXAMPLES = 5


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
    # What the rule wants, as plain JSON: {"min": 0, "max": 120}, {"allowed": [...]}, {"regex": ...}, ...
    expected: Any = None

    def describe(self) -> str:
        where = f" on '{self.column}'" if self.column else ""
        shown = [e for e in self.examples[:3] if e is not None]  # a blank's example is only None
        examples = f", e.g. {shown}" if shown else ""
        return f"{self.rule}{where} ({_expected_text(self.expected)}observed {jsonable(self.observed)}{examples})"


def _expected_text(expected: Any) -> str:
    """``expected max=309.1; `` for a message: the bound a failure broke is what a user edits next."""
    if not isinstance(expected, dict) or not expected:
        return ""
    shown = []
    for key, value in expected.items():
        if isinstance(value, list) and len(value) > PARTIAL_EXAMPLES:
            value = [*value[:PARTIAL_EXAMPLES], f"... {len(value) - PARTIAL_EXAMPLES} more"]
        shown.append(f"{key}={value}")
    return f"expected {', '.join(shown)}; "


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
        return jsonable(out)


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


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: containers recursed, NaN/inf and NA as None, the rest as str."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | np.ndarray):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return None if value is pd.NA or value is pd.NaT else str(value)
