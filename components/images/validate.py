"""The image gate: check a folder's manifest against an image contract and decide.

Rules on single files (readable, size, mode, label in the allowed set) are column
expectations over the manifest, so they run as real Great Expectations checks
through the tabular engine (``gx_engine.run_checks``): the same suite machinery,
result format and report rows as tables. Which files broke them is computed in
pandas from the same rule (GX's BASIC results give values, not rows), which is
what the tabular gate does for quarantine too. Rules on the whole set (images per
class, class balance, quarantined share, duplicates across splits) are pandas.

Files failing a ``quarantine`` rule are set aside; set rules count the kept
files, since those are what trains. Every file a rule flagged is one row of
``findings``, so the report names them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import pandas as pd

from components.images.contract import ImageContract
from components.images.split import split_leakage
from components.validation.gx_engine import Check, run_checks
from components.validation.report import PARTIAL_EXAMPLES, RuleResult, ValidationReport, jsonable

log = logging.getLogger(__name__)

FINDING_COLUMNS = ["path", "rule", "severity", "detail"]


@dataclass(frozen=True)
class ImageValidation:
    """The report, the manifest rows that pass quarantine, and each file a rule flagged (and why)."""

    report: ValidationReport
    kept: pd.DataFrame
    findings: pd.DataFrame  # FINDING_COLUMNS, one row per file and rule
    resized: tuple[str, ...] = ()  # files read at another size under ``resize: fit``

    def files(self, severity: str) -> list[str]:
        """Paths flagged by rules of ``severity`` (quarantine: set aside; block: why the run stops)."""
        return sorted(set(self.findings.loc[self.findings["severity"] == severity, "path"]))


def _size_column(manifest: pd.DataFrame) -> pd.Series:
    """``"WxH"`` per file, NA when the header gave no size: one value, so size is one rule, not two."""
    text = manifest["width"].astype("string") + "x" + manifest["height"].astype("string")
    return text.astype("string")


def _file_rules(manifest: pd.DataFrame, contract: ImageContract) -> list[tuple[Check, pd.Series, pd.Series]]:
    """Each file rule as a GX check, the files breaking it (a mask) and, per file, why."""
    size, expected_size = _size_column(manifest), f"{contract.width}x{contract.height}"
    rules = [
        ("unreadable", "readable", [True], ~manifest["readable"], manifest["error"]),
        ("wrong_mode", "mode", [contract.mode], manifest["mode"].notna() & (manifest["mode"] != contract.mode),
         "mode " + manifest["mode"].fillna("") + f", expected {contract.mode}"),
        ("unknown_label", "label", list(contract.labels), ~manifest["label"].isin(contract.labels),
         "label '" + manifest["label"] + "' is not allowed"),
    ]  # fmt: skip
    if contract.resize == "none":
        wrong = size.notna() & (size != expected_size)
        rules.insert(1, ("wrong_size", "size", [expected_size], wrong, size.fillna("") + f", expected {expected_size}"))
    out = []
    for rule, column, allowed, mask, detail in rules:
        kwargs = {"column": column, "value_set": allowed}
        check = Check(rule, column, contract.severity_of(rule), "expect_column_values_to_be_in_set", kwargs)
        out.append((check, mask.fillna(False).astype(bool), detail.astype("string")))
    return out


def _findings(manifest: pd.DataFrame, rules: list[tuple[Check, pd.Series, pd.Series]]) -> pd.DataFrame:
    parts = [
        pd.DataFrame({"path": manifest.loc[mask, "path"], "rule": check.rule, "severity": check.severity,
                      "detail": detail[mask]})
        for check, mask, detail in rules
        if mask.any()
    ]  # fmt: skip
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="string") for c in FINDING_COLUMNS})
    return pd.concat(parts, ignore_index=True).astype("string").sort_values(["path", "rule"], ignore_index=True)


def _result(rule: str, column: str | None, severity: str, success: bool, observed, **kw) -> RuleResult:
    return RuleResult(rule, column, f"pandas.{rule}", severity, success, jsonable(observed), **kw)


def set_checks(kept: pd.DataFrame, contract: ImageContract) -> list[RuleResult]:
    """Images per allowed label and the largest / smallest class ratio, over the ``kept`` files."""
    counts = kept["label"].value_counts()
    per_class = {label: int(counts.get(label, 0)) for label in contract.labels}
    short = [label for label, n in per_class.items() if n < contract.min_per_class]
    results = [
        _result("min_per_class", "label", contract.severity_of("min_per_class"), not short, per_class,
                unexpected_count=len(short), examples=short, expected={"min": contract.min_per_class})
    ]  # fmt: skip
    if contract.max_class_ratio is not None:
        largest, smallest = max(per_class, key=per_class.get), min(per_class, key=per_class.get)
        big, small = per_class[largest], per_class[smallest]
        ratio = big / small if small else float("inf")
        observed = {"ratio": round(ratio, 4), "largest": {largest: big}, "smallest": {smallest: small}}
        ok = ratio <= contract.max_class_ratio
        results.append(
            _result("class_balance", "label", contract.severity_of("class_balance"), ok, observed,
                    examples=[] if ok else [largest, smallest], expected={"max": contract.max_class_ratio})
        )  # fmt: skip
    return results


def _with_files(result: RuleResult, paths: pd.Series) -> RuleResult:
    """GX's result, its examples the files (not the values) that broke the rule: the report names files."""
    return replace(result, examples=paths.head(PARTIAL_EXAMPLES).tolist())


def validate_images(
    manifest: pd.DataFrame,
    contract: ImageContract,
    *,
    splits: Mapping[str, Sequence[str]] | None = None,
) -> ImageValidation:
    """Check ``manifest`` (from ``scan_images``) against ``contract``; ``splits`` adds the leakage rule.

    The manifest is not modified. ``kept`` holds the rows no quarantine rule set aside.
    """
    rules = _file_rules(manifest, contract)
    frame = manifest[["path", "label", "mode", "readable"]].assign(size=_size_column(manifest))
    # run_checks reads only the contract's name (to name the GX suite) when given the checks.
    gx_results = run_checks(frame, contract, [check for check, _, _ in rules])  # type: ignore[arg-type]
    results = [_with_files(r, manifest.loc[mask, "path"]) for r, (_, mask, _) in zip(gx_results, rules, strict=True)]
    findings = _findings(manifest, rules)
    set_aside = pd.Series(False, index=manifest.index)
    for check, mask, _ in rules:
        if check.severity == "quarantine":
            set_aside |= mask
    kept = manifest[~set_aside]
    n_files, n_quarantined = len(manifest), int(set_aside.sum())
    fraction = n_quarantined / n_files if n_files else 0.0
    resized: tuple[str, ...] = ()
    if contract.resize == "fit":
        size = _size_column(kept)
        resized = tuple(kept.loc[size.notna() & (size != f"{contract.width}x{contract.height}"), "path"])
        observed = f"{len(resized)} file(s) resized to {contract.width}x{contract.height} when read (resize: fit)"
        results.append(_result("resized", "size", "warn", True, observed, unexpected_count=len(resized),
                               examples=list(resized[:PARTIAL_EXAMPLES])))  # fmt: skip
    results += set_checks(kept, contract)
    results.append(
        _result("quarantine_share", None, contract.severity_of("quarantine_share"),
                fraction <= contract.max_quarantine_fraction,
                {"fraction": round(fraction, 6), "limit": contract.max_quarantine_fraction},
                unexpected_count=n_quarantined, unexpected_percent=100.0 * fraction,
                examples=findings.loc[findings["severity"] == "quarantine", "path"].head(PARTIAL_EXAMPLES).tolist(),
                expected={"max": contract.max_quarantine_fraction})
    )  # fmt: skip
    if splits is not None:
        results.append(split_leakage(manifest, splits, contract.duplicates_across_splits))
    success = not any(r.severity == "block" and not r.success for r in results)
    report = ValidationReport(success, n_files, n_quarantined, fraction, tuple(results), None, contract.name)
    log.info(
        "validation of %d images against '%s': %s (%d failed, %d warnings, %d files quarantined)",
        n_files,
        contract.name,
        "passed" if success else "REJECTED",
        len(report.failures()),
        len(report.warnings()),
        n_quarantined,
    )
    return ImageValidation(report, kept, findings, resized)
