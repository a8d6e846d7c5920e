"""A ValidationReport as a self-contained HTML page (plus its JSON twin).

Our own small renderer: no GX Data Docs, no external assets. Every value from
the data goes through ``html.escape``. The page opens with a header (dataset,
md5, time, contract, drift reference: what the caller passes as ``header``),
then the failed rules by severity, drift in a section of its own, and the
passed rules folded in a ``<details>``. Each rule shows what it expects (range
bounds, allowed sets, ...); empty values are blank cells.
"""

from __future__ import annotations

import html
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.validation.report import RuleResult, ValidationReport

# An allowed set longer than this is cut, with "(+N more)"; the JSON report keeps all of it.
MAX_SET_ITEMS = 12
MAX_TEXT = 300

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1200px}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}
th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}
th{background:#f4f4f4} code{font-size:.85rem}
dl.header{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem;margin:0 0 1rem}
dl.header dt{font-weight:bold} dl.header dd{margin:0;word-break:break-all}
details{margin:.5rem 0 1.5rem} summary{cursor:pointer;font-weight:bold}
.badge{display:inline-block;padding:.2rem .6rem;border-radius:.3rem;color:#fff;font-weight:bold}
.pass{background:#2e7d32} .fail{background:#c62828} .warn{background:#ef6c00} .quarantine{background:#6a1b9a}
tr.failed td:first-child{border-left:4px solid #c62828}
"""


def _blank(value: Any) -> bool:
    if value is None or value == "" or (isinstance(value, list | tuple | dict | set) and not value):
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return str(value) in ("nan", "NaN", "<NA>", "NaT", "None")


def _item(value: Any) -> str:
    """One value of a list: strings quoted (so blanks and spaces show), the rest as JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "null"
    if isinstance(value, float):
        return f"{value:.6g}"
    return json.dumps(value, ensure_ascii=False, default=str)


def _text(value: Any) -> str:
    """``value`` as short plain text; '' for None, NaN, empty lists and the like."""
    if _blank(value):
        return ""
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_text(v) or '-'}" for k, v in value.items())
    if isinstance(value, list | tuple | set):
        return ", ".join(_item(v) for v in value)
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _e(value: Any) -> str:
    return html.escape(_text(value))


def _code(value: Any) -> str:
    text = _e(value)
    return f"<code>{text}</code>" if text else ""


def expected_text(expected: Any) -> str:
    """What a rule expects, in words: 'between 0 and 120', 'one of "a", "b" … (+3 more)', ..."""
    if _blank(expected):
        return ""
    if not isinstance(expected, dict):
        return _text(expected)
    exp, parts = dict(expected), []
    low, high = exp.pop("min", None), exp.pop("max", None)
    if low is not None and high is not None:
        parts.append(f"between {_text(low)} and {_text(high)}")
    elif low is not None:
        parts.append(f"at least {_text(low)}")
    elif high is not None:
        parts.append(f"at most {_text(high)}")
    allowed = exp.pop("allowed", None)
    if allowed is not None:
        values = list(allowed)
        shown = ", ".join(_item(v) for v in values[:MAX_SET_ITEMS])
        more = f" … (+{len(values) - MAX_SET_ITEMS} more)" if len(values) > MAX_SET_ITEMS else ""
        parts.append(f"one of {shown}{more}")
    if "regex" in exp:
        parts.append(f"matches {exp.pop('regex')}")
    if "dtype" in exp:
        parts.append(f"dtype {exp.pop('dtype')}")
    if "min_non_null_share" in exp:
        parts.append(f"non-null share at least {_text(exp.pop('min_non_null_share'))}")
    if "max_abs_z" in exp:
        parts.append(f"|z| below {_text(exp.pop('max_abs_z'))}")
    parts += [f"{k}: {_text(v)}" for k, v in exp.items() if not _blank(v)]
    return "; ".join(parts)


def _rules_table(results: list[RuleResult]) -> str:
    head = "<tr><th>rule</th><th>column</th><th>severity</th><th>result</th><th>expected</th><th>observed</th>"
    head += "<th>unexpected</th><th>examples</th><th>expectation</th></tr>"
    rows = []
    for r in results:
        status = "pass" if r.success else ("fail" if r.severity == "block" else r.severity)
        label = "passed" if r.success else "failed"
        unexpected = f"{r.unexpected_count} ({r.unexpected_percent:.2f}%)" if r.unexpected_count else ""
        rows.append(
            f'<tr class="{"passed" if r.success else "failed"}"><td>{_e(r.rule)}</td><td>{_e(r.column)}</td>'
            f'<td>{_e(r.severity)}</td><td><span class="badge {_e(status)}">{label}</span></td>'
            f"<td>{html.escape(expected_text(r.expected))}</td>"
            f"<td>{_code(r.observed)}</td><td>{_e(unexpected)}</td>"
            f"<td>{_code(r.examples)}</td><td>{_code(r.expectation)}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _drift_table(drift: dict) -> str:
    head = "<tr><th>column</th><th>kind</th><th>PSI</th><th>KS</th><th>new categories</th>"
    head += "<th>threshold</th><th>drifted</th></tr>"
    rows = []
    for name, s in drift.get("columns", {}).items():
        new = ""
        if s.get("new_category_share"):
            listed = ", ".join(_item(v) for v in s.get("new_categories") or [])
            new = f"{s['new_category_share']:.2%}" + (f": {listed}" if listed else "")
        threshold = f"PSI {_text(s.get('threshold'))}"
        if s.get("new_category_threshold") is not None:
            threshold += f"; new share {s['new_category_threshold']:.2%}"
        flag = '<span class="badge warn">drifted</span>' if s.get("drifted") else "no"
        rows.append(
            f"<tr><td>{_e(name)}</td><td>{_e(s.get('kind'))}</td><td>{_e(s.get('psi'))}</td>"
            f"<td>{_e(s.get('ks'))}</td><td>{_e(new)}</td><td>{_e(threshold)}</td><td>{flag}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _drift_section(report: ValidationReport, reference: str | None) -> str:
    against = f" against {_e(reference)}" if reference else ""
    drift = report.drift
    if drift is None:
        why = "no reference data was given" if not reference else "it was not measured for this data"
        return f'<h2 id="drift">Drift</h2><p>No drift computed{against}: {_e(why)}.</p>'
    drifted = ", ".join(drift.get("drifted", [])) or "none"
    rule = [r for r in report.results if r.rule == "drift"]
    failed = sum(1 for r in rule if not r.success)
    verdict = f"severity {_e(drift.get('severity'))}; {failed} of {len(rule)} columns over their threshold"
    rows = f"{_e(drift.get('n_reference'))} reference rows, {_e(drift.get('n_current'))} current rows"
    return (
        f'<h2 id="drift">Drift</h2><p>Compared{against}: {rows}. Drifted columns: {_e(drifted)} ({verdict}).</p>'
        f"{_drift_table(drift)}"
    )


def _header(report: ValidationReport, header: dict[str, str] | None) -> tuple[str, str | None]:
    """The header as a definition list (time and contract filled when absent), and the drift reference."""
    items = dict(header or {})
    lower = {k.lower(): k for k in items}
    if not any(k.startswith("time") for k in lower):
        items["time (UTC)"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    if not any(k.startswith("contract") for k in lower) and report.contract:
        items["contract"] = report.contract
    reference = next((items[lower[k]] for k in lower if k.startswith("drift")), None)
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v) or '-'}</dd>" for k, v in items.items())
    return f'<dl class="header">{rows}</dl>', (str(reference) if reference else None)


def report_header(
    *,
    dataset: str | Path | None = None,
    md5: str | None = None,
    contract: str | None = None,
    contract_source: str | Path | None = None,
    drift_reference: str | None = None,
) -> dict[str, str]:
    """The usual ``header`` of :func:`write_report`, with the labels every caller uses; None values are left out."""
    name = f"{contract} ({contract_source})" if contract and contract_source else contract or contract_source
    items = {"dataset": dataset, "md5": md5, "contract": name, "drift reference": drift_reference}
    return {k: str(v) for k, v in items.items() if v not in (None, "")}


def render_html(report: ValidationReport, *, title: str, header: dict[str, str] | None = None) -> str:
    """The whole page as one string; ``header`` (label -> value) opens it, see :func:`write_report`."""
    status = '<span class="badge pass">PASSED</span>' if report.success else '<span class="badge fail">REJECTED</span>'
    failures, warnings, quarantined = report.failures(), report.warnings(), report.quarantined()
    top, reference = _header(report, header)
    # Drift has its own section: its per-column rules are not repeated in the rule tables.
    in_tables = [r for r in report.results if report.drift is None or r.rule != "drift"]
    tabled = {id(r) for r in in_tables}

    def shown(items: list[RuleResult]) -> list[RuleResult]:
        return [r for r in items if id(r) in tabled]

    parts = [
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{_e(title)}</title>',
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>{top}",
        f"<p>{status} contract <b>{_e(report.contract)}</b>: {report.n_rows} rows, "
        f"{report.n_quarantined} quarantined ({report.quarantine_fraction:.2%}), {len(failures)} blocking "
        f"failures, {len(warnings)} warnings.</p>",
    ]
    listed: set[int] = set()
    for heading, items in (
        ("Blocking failures", shown(failures)),
        ("Warnings", shown(warnings)),
        ("Quarantine rules", shown(quarantined)),
    ):
        listed |= {id(r) for r in items}
        if items:
            parts.append(f"<h2>{heading}</h2>{_rules_table(items)}")
    other = [r for r in in_tables if not r.success and id(r) not in listed]
    if other:
        parts.append(f"<h2>Other failed rules</h2>{_rules_table(other)}")
    drift_failed = [r for r in report.results if r.rule == "drift" and not r.success and id(r) not in tabled]
    if drift_failed:
        parts.append(f'<p>Drift rule failed on {len(drift_failed)} column(s): see <a href="#drift">Drift</a>.</p>')
    parts.append(_drift_section(report, reference))
    passed = [r for r in in_tables if r.success]
    n_failed = len(in_tables) - len(passed)
    parts.append(f"<h2>All rules ({len(in_tables)})</h2><p>{n_failed} failed (listed above), {len(passed)} passed.</p>")
    if passed:
        parts.append(f"<details><summary>Passed rules ({len(passed)})</summary>{_rules_table(passed)}</details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    report: ValidationReport, directory: str | Path, *, title: str, header: dict[str, str] | None = None
) -> Path:
    """Write ``validation_report.html`` and ``validation_report.json``; return the HTML path.

    ``header`` (label -> value, in order) opens the page as a definition list: dataset path,
    md5, contract (name and source), drift reference. ``time (UTC)`` is added when no label
    starts with "time", the contract's name when no label starts with "contract"; a label
    starting with "drift" also names the reference in the Drift section. The JSON twin keeps
    the header under ``"header"``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    page = render_html(report, title=title, header=header)
    data = report.to_dict() | ({"header": {str(k): str(v) for k, v in header.items()}} if header else {})
    (directory / "validation_report.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    path = directory / "validation_report.html"
    path.write_text(page, encoding="utf-8")
    return path
