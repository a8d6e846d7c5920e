"""A drift report (``build_drift_report``'s dict) as one self-contained HTML page.

No external assets, so the page reads the same from disk, from MLflow's artifact view or attached
to a ticket. Every text from the data or the context (column names, paths, notes) goes through
``html.escape``.
"""

from __future__ import annotations

import html
import json
from typing import Any

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}
th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}
th{background:#f4f4f4} td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:.2rem .6rem;border-radius:.3rem;color:#fff;font-weight:bold}
.ok{background:#2e7d32} .drift{background:#c62828} .skip{background:#757575}
tr.drifted td:first-child{border-left:4px solid #c62828} tr.prediction td{border-top:2px solid #555}
.note{color:#555;font-size:.85rem}
"""


def _e(value: Any) -> str:
    if isinstance(value, dict | list):
        value = json.dumps(value, default=str)
    return html.escape("" if value is None else str(value))


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _badge(drifted: bool | None) -> str:
    if drifted is None:
        return '<span class="badge skip">skipped</span>'
    return '<span class="badge drift">drifted</span>' if drifted else '<span class="badge ok">no drift</span>'


def _context(context: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in context.items())
    return f"<table>{rows}</table>"


def _summary(report: dict[str, Any]) -> str:
    share, threshold = report["share_drifted"], report["drift_share"]
    pred = report.get("prediction")
    pred_text = "not compared" if pred is None else ("drifted" if pred["drifted"] else "no drift")
    badge = "<span class='badge drift'>dataset drift</span>" if report["dataset_drift"] else (
        "<span class='badge ok'>no dataset drift</span>")  # fmt: skip
    return (
        f"<p>{badge} {_e(report['verdict'].split(': ', 1)[-1])}</p>"
        "<table>"
        f"<tr><th>columns compared</th><td class='num'>{report['n_columns']}</td></tr>"
        f"<tr><th>columns drifted</th><td class='num'>{report['n_drifted']}</td></tr>"
        f"<tr><th>share drifted</th><td class='num'>{share:.2%}</td></tr>"
        f"<tr><th>threshold (monitor.drift_share)</th><td class='num'>{threshold:.2%}</td></tr>"
        f"<tr><th>dataset drift (share &gt; threshold)</th><td>{'yes' if report['dataset_drift'] else 'no'}</td></tr>"
        f"<tr><th>prediction drift</th><td>{_e(pred_text)}</td></tr>"
        "</table>"
    )


def _row(r: dict[str, Any], css: str = "") -> str:
    n = f"{r['n_reference']} / {r['n_current']}"
    blanks = f"{r['blank_reference']} / {r['blank_current']}" if "blank_reference" in r else ""
    classes = " ".join(c for c in (css, "drifted" if r["drifted"] else "") if c)
    return (
        f"<tr class='{classes}'><td>{_e(r['column'])}</td><td>{_e(r['kind'])}</td><td>{_e(r['statistic'])}</td>"
        f"<td class='num'>{_number(r['value'])}</td><td class='num'>{_number(r['threshold'])}</td>"
        f"<td>{_badge(r['drifted'])}</td><td class='num'>{_e(n)}</td><td class='num'>{_e(blanks)}</td>"
        f"<td class='note'>{_e(r.get('note', ''))}</td></tr>"
    )


def _table(report: dict[str, Any]) -> str:
    head = ("<tr><th>column</th><th>kind</th><th>statistic</th><th>value</th><th>threshold</th><th>verdict</th>"
            "<th>n reference / current</th><th>blanks reference / current</th><th>note</th></tr>")  # fmt: skip
    rows = [_row(r) for r in report["columns"]]
    rows += [
        f"<tr><td>{_e(s['column'])}</td><td>{_e(s['kind'])}</td><td colspan='3'>-</td><td>{_badge(None)}</td>"
        f"<td colspan='2'></td><td class='note'>{_e(s['reason'])}</td></tr>"
        for s in report.get("skipped", [])
    ]
    if report.get("prediction"):
        rows.append(_row(report["prediction"] | {"column": "(prediction)"}, "prediction"))
    return f"<table>{head}{''.join(rows)}</table>"


def _legend(report: dict[str, Any]) -> str:
    items = "".join(f"<li><code>{_e(k)}</code>: {_e(v)}</li>" for k, v in report.get("statistics", {}).items())
    s = report["sample"]
    return (
        "<h2>How to read it</h2><ul class='note'>"
        "<li>Statistics follow Evidently's defaults: up to 1000 reference values, tests (drifted when p &lt; 0.05:"
        " KS for numbers with more than 5 distinct values, chi-square for categories, a Z-test for two);"
        " above, distances (drifted when &ge; 0.1: Wasserstein normed by the reference's std, Jensen-Shannon).</li>"
        "<li>Blanks are a category of their own in categorical columns; numeric columns drop them (counted in"
        " the blanks column).</li>"
        f"<li>Compared on seeded uniform samples of at most {_e(s['max_rows'])} rows per side (seed {_e(s['seed'])}):"
        f" reference {_e(s['reference_compared'])} of {_e(s['reference_rows'])} rows, current"
        f" {_e(s['current_compared'])} of {_e(s['current_rows'])} rows.</li>"
        f"{items}</ul>"
    )


def render_drift_html(report: dict[str, Any], title: str = "Drift report") -> str:
    """The page: context header, summary against the threshold, per-column table, how to read it."""
    context = report.get("context") or {}
    heading = f"{title}: {context['batch_name']}" if context.get("batch_name") else title
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(heading)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{_e(heading)}</h1>"
        f"{_context(context)}<h2>Summary</h2>{_summary(report)}"
        f"<h2>Columns</h2>{_table(report)}{_legend(report)}</body></html>"
    )
