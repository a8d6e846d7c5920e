"""A ValidationReport as a self-contained HTML page (plus its JSON twin).

Our own small renderer: no GX Data Docs, no external assets. Every value from
the data goes through ``html.escape``.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from components.validation.report import RuleResult, ValidationReport

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1200px}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}
th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}
th{background:#f4f4f4} code{font-size:.85rem}
.badge{display:inline-block;padding:.2rem .6rem;border-radius:.3rem;color:#fff;font-weight:bold}
.pass{background:#2e7d32} .fail{background:#c62828} .warn{background:#ef6c00} .quarantine{background:#6a1b9a}
tr.failed td:first-child{border-left:4px solid #c62828}
"""


def _e(value: Any) -> str:
    if isinstance(value, dict | list):
        value = json.dumps(value, default=str)
    return html.escape("" if value is None else str(value))


def _rules_table(results: list[RuleResult]) -> str:
    head = "<tr><th>rule</th><th>column</th><th>severity</th><th>result</th><th>observed</th>"
    head += "<th>unexpected</th><th>examples</th><th>expectation</th></tr>"
    rows = []
    for r in results:
        status = "pass" if r.success else ("fail" if r.severity == "block" else r.severity)
        label = "passed" if r.success else "failed"
        unexpected = f"{r.unexpected_count} ({r.unexpected_percent:.2f}%)" if r.unexpected_count else ""
        rows.append(
            f'<tr class="{"passed" if r.success else "failed"}"><td>{_e(r.rule)}</td><td>{_e(r.column)}</td>'
            f'<td>{_e(r.severity)}</td><td><span class="badge {status}">{label}</span></td>'
            f"<td><code>{_e(r.observed)}</code></td><td>{_e(unexpected)}</td>"
            f"<td><code>{_e(r.examples)}</code></td><td><code>{_e(r.expectation)}</code></td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _drift_table(drift: dict) -> str:
    head = "<tr><th>column</th><th>kind</th><th>PSI</th><th>KS</th><th>new categories</th>"
    head += "<th>threshold</th><th>drifted</th></tr>"
    rows = []
    for name, s in drift.get("columns", {}).items():
        new = f"{s['new_category_share']:.2%} {s.get('new_categories', [])}" if "new_category_share" in s else ""
        flag = '<span class="badge warn">drifted</span>' if s["drifted"] else "no"
        rows.append(
            f"<tr><td>{_e(name)}</td><td>{_e(s['kind'])}</td><td>{_e(s['psi'])}</td>"
            f"<td>{_e(s.get('ks', ''))}</td><td>{_e(new)}</td>"
            f"<td>{_e(s['threshold'])}</td><td>{flag}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def render_html(report: ValidationReport, *, title: str) -> str:
    """The whole page as one string."""
    status = '<span class="badge pass">PASSED</span>' if report.success else '<span class="badge fail">REJECTED</span>'
    failures, warnings, quarantined = report.failures(), report.warnings(), report.quarantined()
    parts = [
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{_e(title)}</title>',
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1><p>{status} contract <b>{_e(report.contract)}</b>: {report.n_rows} rows, "
        f"{report.n_quarantined} quarantined ({report.quarantine_fraction:.2%}), {len(failures)} blocking "
        f"failures, {len(warnings)} warnings.</p>",
    ]
    for heading, items in (
        ("Blocking failures", failures),
        ("Warnings", warnings),
        ("Quarantine rules", quarantined),
    ):
        if items:
            parts.append(f"<h2>{heading}</h2>{_rules_table(items)}")
    if report.drift is not None:
        drifted = ", ".join(report.drift.get("drifted", [])) or "none"
        parts.append(f"<h2>Drift</h2><p>Drifted columns: {_e(drifted)}</p>{_drift_table(report.drift)}")
    parts.append(f"<h2>All rules ({len(report.results)})</h2>{_rules_table(list(report.results))}")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(report: ValidationReport, directory: str | Path, *, title: str) -> Path:
    """Write ``validation_report.html`` and ``validation_report.json``; return the HTML path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "validation_report.json").write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    path = directory / "validation_report.html"
    path.write_text(render_html(report, title=title), encoding="utf-8")
    return path
