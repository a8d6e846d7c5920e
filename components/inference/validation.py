"""A batch to score, checked against the contract one chunk at a time.

Training validates a whole frame; a batch to score can be bigger than memory, so it is read in
chunks and each chunk goes through the same ``validate_frame`` (GX value rules, quarantine) with
the rules that only make sense over the whole batch taken out of the per-chunk contract. Those
are decided once from running totals at the end: the share of quarantined rows, null fractions,
constant columns, keys unique across chunks, and the contract's drift rule (on the bounded uniform
sample of the scored rows that ``score_batch`` keeps for monitoring, against the champion's training
data).

The target is not required: labels arrive later. So the contract a batch meets
(:func:`scoring_contract`) keeps every feature rule but turns the target into an optional
placeholder, and row-count bounds (meant for training sets) do not apply to a batch.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.data.contract import ColumnRule, Contract
from components.model.tasks import REGRESSION
from components.validation.drift import drift_report
from components.validation.pandas_checks import quarantine_share_result
from components.validation.report import PARTIAL_EXAMPLES, RuleResult, ValidationReport, jsonable
from components.validation.validate import _drift_results, validate_frame

NULL_FRACTION_EXPECTATION = "expect_column_proportion_of_non_null_values_to_be_between"


def scoring_contract(contract: Contract) -> Contract:
    """The rules a batch to score must meet: ``contract``'s feature rules, with no target required.

    The target column becomes a nullable placeholder (the batch's own target, if any, is set
    aside by :func:`prepare_chunk`); declaring the task regression here only switches off the
    label rules (labels, min_classes, class balance) that a target-less batch cannot meet.
    """
    placeholder = ColumnRule(name=contract.target, dtype="float", nullable=True, feature=False, not_constant=False)
    columns = tuple(placeholder if c.name == contract.target else c for c in contract.columns)
    return dataclasses.replace(contract, columns=columns, task=REGRESSION, labels=[], class_balance={},
                               min_rows=0, max_rows=None, evaluation={})  # fmt: skip


def chunk_contract(contract: Contract) -> Contract:
    """``contract`` without the rules a chunk cannot decide alone (the batch's totals decide them)."""
    columns = tuple(
        dataclasses.replace(c, not_constant=False, max_null_fraction=None) if c.nullable else
        dataclasses.replace(c, not_constant=False)
        for c in contract.columns
    )  # fmt: skip
    return dataclasses.replace(contract, columns=columns, max_quarantine_fraction=1.0)


def prepare_chunk(chunk: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """``chunk`` with its target (if any) replaced by an all-missing placeholder the scoring contract allows."""
    return chunk.drop(columns=[contract.target], errors="ignore").assign(**{contract.target: np.nan})


def _merge(results: list[RuleResult], n_rows: int) -> list[RuleResult]:
    """One result per rule and column over every chunk: failing if any chunk failed, counts summed."""
    groups: dict[tuple, list[RuleResult]] = {}
    for r in results:
        groups.setdefault((r.rule, r.column, r.expectation, r.severity), []).append(r)
    merged = []
    for parts in groups.values():
        failed = [r for r in parts if not r.success]
        count = sum(r.unexpected_count for r in parts)
        observed = (failed or parts)[0].observed
        if isinstance(observed, str) and observed.endswith("rows unexpected"):
            observed = f"{count} of {n_rows} rows unexpected"
        examples = [e for r in failed for e in r.examples][:PARTIAL_EXAMPLES]
        pct = 100.0 * count / max(n_rows, 1)
        merged.append(dataclasses.replace(parts[0], success=not failed, observed=observed, unexpected_count=count,
                                          unexpected_percent=pct, examples=examples))  # fmt: skip
    return merged


class BatchChecks:
    """Running validation of one batch: :meth:`check` each chunk, then :meth:`report` once.

    ``reference`` (the champion's training data, or None to skip drift) is compared with the
    sample of kept rows given to :meth:`report` (seeded, so a batch always gets the same verdict).
    """

    def __init__(self, contract: Contract, reference: pd.DataFrame | None, quarantine_path: Path) -> None:
        self.contract = scoring_contract(contract)
        self._chunk_contract = chunk_contract(self.contract)
        self.reference = None if reference is None else reference.drop(columns=[contract.target], errors="ignore")
        self.quarantine_path = quarantine_path
        self.n_rows = self.n_quarantined = 0
        self._results: list[RuleResult] = []
        self._nulls = {c.name: 0 for c in self.contract.columns if c.nullable and c.max_null_fraction is not None}
        self._first: dict[str, Any] = {}  # not_constant: a column's first value, until one differs
        self._varies = {c.name: False for c in self.contract.columns if c.not_constant}
        self._key_hashes: list[np.ndarray] = []
        self._rejected_rows: pd.DataFrame | None = None  # the kept rows of the chunk that stopped the batch

    def check(self, chunk: pd.DataFrame) -> tuple[pd.DataFrame, list[RuleResult]]:
        """Validate one normalised chunk (from :func:`prepare_chunk`); return its kept rows and its
        blocking failures (a non-empty list: stop, the batch is rejected whatever follows)."""
        part = self.quarantine_path.with_suffix(".part.parquet")
        report, kept = validate_frame(chunk, self._chunk_contract, quarantine_path=part)
        self._results += [r for r in report.results if r.column != self.contract.target]
        self.n_rows += len(chunk)
        self._append_quarantine(part, report.n_quarantined)
        self._totals(chunk)
        failures = [r for r in report.failures() if r.column != self.contract.target]
        if failures:  # never scored, so not in the caller's sample: a rejected report still shows their drift
            self._rejected_rows = kept
        return kept, failures

    def _append_quarantine(self, part: Path, n: int) -> None:
        if n:
            rows = pd.read_parquet(part).drop(columns=[self.contract.target])
            rows.to_csv(self.quarantine_path, mode="a", header=not self.n_quarantined, index=False)
            self.n_quarantined += n
        part.unlink(missing_ok=True)

    def _totals(self, chunk: pd.DataFrame) -> None:
        for name in self._nulls:
            if name in chunk:
                self._nulls[name] += int(chunk[name].isna().sum())
        for name, varies in self._varies.items():
            if varies or name not in chunk:
                continue
            values = chunk[name].dropna()
            if len(values):
                first = self._first.setdefault(name, values.iloc[0])
                self._varies[name] = bool((values != first).any())
        keys = self.contract.keys
        if keys and set(keys) <= set(chunk.columns):
            self._key_hashes.append(pd.util.hash_pandas_object(chunk[keys], index=False).to_numpy())

    def _batch_results(self) -> list[RuleResult]:
        """The rules decided over the whole batch, in the forms ``validate_frame`` reports them."""
        out = []
        for name, nulls in self._nulls.items():
            rule = self.contract.column(name)
            share = 1 - nulls / max(self.n_rows, 1)
            out.append(RuleResult("null_fraction", name, NULL_FRACTION_EXPECTATION, rule.severity_of("null_fraction"),
                                  share >= round(1 - rule.max_null_fraction, 12), jsonable(share), nulls,
                                  100.0 * nulls / max(self.n_rows, 1),
                                  expected={"min_non_null_share": round(1 - rule.max_null_fraction, 12)}))  # fmt: skip
        for name, varies in self._varies.items():
            if name in self._first and self.n_rows > 1:
                observed = "varies" if varies else f"every value is {self._first[name]!r}"
                sev = self.contract.column(name).severity_of("not_constant")
                out.append(RuleResult("not_constant", name, "pandas.not_constant", sev, varies, observed))
        return out

    def _unique_keys(self, merged: list[RuleResult]) -> list[RuleResult]:
        """Keys unique across chunks, not only within each (64-bit row hashes: collisions are negligible)."""
        if not self._key_hashes:
            return merged
        _, inverse, counts = np.unique(np.concatenate(self._key_hashes), return_inverse=True, return_counts=True)
        dup = int((counts[inverse] > 1).sum())
        out = []
        for r in merged:
            if r.rule == "unique_keys":
                observed = f"{dup} of {self.n_rows} rows share a key" if dup else r.observed
                r = dataclasses.replace(r, success=dup == 0, unexpected_count=dup, observed=observed,
                                        unexpected_percent=100.0 * dup / max(self.n_rows, 1))  # fmt: skip
            out.append(r)
        return out

    def report(self, *, stopped_early: bool = False, sample: pd.DataFrame | None = None) -> ValidationReport:
        """The batch's report: chunk results merged, then the batch-wide rules and drift.

        ``stopped_early``: a chunk was rejected, so the rest was never read; only its results count
        (drift too: ``sample`` plus the failing chunk's kept rows, which were never scored).
        ``sample``: a uniform sample of the kept rows, for the contract's drift rule (None: no drift).
        """
        results = self._unique_keys(_merge(self._results, self.n_rows))
        results = [r for r in results if r.rule != "quarantine_share"]  # per chunk it was switched off
        fraction = self.n_quarantined / max(self.n_rows, 1)
        drift = None
        if not stopped_early:
            results += self._batch_results()
            results.append(quarantine_share_result(fraction, self.n_quarantined, self.contract))
        # Drift is reported on rejected batches too: over the rows read up to and including the failing chunk.
        extra = self._rejected_rows if stopped_early else None
        current = [f for f in (sample, extra) if f is not None and len(f)]
        if self.reference is not None and current:
            rows = pd.concat(current) if len(current) > 1 else current[0]
            drift = drift_report(self.reference, rows.drop(columns=[self.contract.target], errors="ignore"),
                                 self.contract)  # fmt: skip
            drift["n_current"] = self.n_rows - self.n_quarantined  # the sample stands for every kept row
            results += _drift_results(drift, self.contract)
        success = not stopped_early and not any(r.severity == "block" and not r.success for r in results)
        return ValidationReport(success, self.n_rows, self.n_quarantined, fraction, tuple(results), drift,
                                self.contract.name)  # fmt: skip
