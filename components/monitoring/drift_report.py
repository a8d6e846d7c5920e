"""A drift report: every feature column and the predictions of current data against a reference.

:func:`build_drift_report` runs :func:`~components.monitoring.drift_stats.column_drift` on each
column (statistic by type and size) and on the predictions, and decides dataset drift: more than
``drift_share`` of the columns drifted. Each side is compared on a seeded sample of at most
``MAX_ROWS`` rows (the report says so): the distances and tests need no more, and the report
stays a small cost beside scoring whatever the batch size. :func:`write_drift_report` writes it
as JSON and as a self-contained HTML page; :func:`drift_markdown` is the table for a Prefect
artifact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from components.monitoring.drift_report_html import render_drift_html
from components.monitoring.drift_stats import CATEGORICAL, KINDS, NUMERIC, STATISTICS, column_drift

MAX_ROWS = 50_000  # per side; a larger frame is compared on a seeded sample of this many rows
SEED = 0


def _sample(data: pd.DataFrame | pd.Series, max_rows: int) -> pd.DataFrame | pd.Series:
    return data if len(data) <= max_rows else data.sample(n=max_rows, random_state=SEED)


def infer_prediction_kind(predictions: pd.Series) -> str:
    """Floats (a regression's values) are numeric; labels, whatever their type (ints too), categorical."""
    return NUMERIC if pd.api.types.is_float_dtype(predictions.dtype) else CATEGORICAL


def verdict(report: dict[str, Any]) -> str:
    """One line: how many columns drifted against the threshold, and the predictions."""
    n, k = report["n_columns"], report["n_drifted"]
    head = "dataset drift" if report["dataset_drift"] else "no dataset drift"
    names = f" ({', '.join(report['drifted'])})" if report["drifted"] else ""
    line = (f"{head}: {k} of {n} columns drifted{names}, share {report['share_drifted']:.2f} "
            f"{'>' if report['dataset_drift'] else '<='} {report['drift_share']:.2f}")  # fmt: skip
    pred = report.get("prediction")
    if pred is not None and pred.get("value") is not None:
        line += "; predictions " + ("drifted" if pred["drifted"] else "stable")
    return line


def build_drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: dict[str, str],
    *,
    reference_predictions: pd.Series | None,
    current_predictions: pd.Series | None,
    drift_share: float,
    context: dict[str, Any],
    prediction_kind: str | None = None,
    max_rows: int = MAX_ROWS,
) -> dict[str, Any]:
    """Drift of ``current`` against ``reference`` per column of ``columns`` (name -> "numeric" or
    "categorical") and of the predictions (labels or values), as a JSON-able dict.

    A column missing on either side is listed under ``skipped`` with the reason and not counted.
    ``dataset_drift`` is ``share_drifted > drift_share``. ``prediction_kind`` (default: numeric for
    float predictions, categorical otherwise) says how predictions are compared.
    """
    if not 0 < drift_share <= 1:
        raise ValueError(f"drift_share must be in (0, 1], got {drift_share}")
    bad = {name: kind for name, kind in columns.items() if kind not in KINDS}
    if bad:
        raise ValueError(f"columns: unknown kind for {', '.join(f'{n}={k!r}' for n, k in bad.items())}; "
                         f"use one of {', '.join(KINDS)}")  # fmt: skip
    ref, cur = _sample(reference, max_rows), _sample(current, max_rows)
    results, skipped = [], []
    for name, kind in columns.items():
        missing = [side for side, frame in (("reference", ref), ("current", cur)) if name not in frame.columns]
        if missing:
            skipped.append({"column": name, "kind": kind, "reason": f"not in the {' and '.join(missing)} data"})
            continue
        results.append(column_drift(ref[name], cur[name], kind))
    drifted = [r["column"] for r in results if r["drifted"]]
    share = len(drifted) / len(results) if results else 0.0
    prediction = None
    if reference_predictions is not None and current_predictions is not None:
        kind = prediction_kind or infer_prediction_kind(reference_predictions)
        ref_pred = _sample(reference_predictions, max_rows).rename("prediction")
        prediction = column_drift(ref_pred, _sample(current_predictions, max_rows).rename("prediction"), kind)
    report = {
        "context": context,
        "columns": results,
        "skipped": skipped,
        "n_columns": len(results),
        "n_drifted": len(drifted),
        "drifted": drifted,
        "share_drifted": round(share, 6),
        "drift_share": float(drift_share),
        "dataset_drift": share > drift_share,
        "prediction": prediction,
        "sample": {
            "max_rows": max_rows,
            "seed": SEED,
            "reference_rows": len(reference),
            "reference_compared": len(ref),
            "current_rows": len(current),
            "current_compared": len(cur),
        },
        "statistics": {name: text for name, (text, _) in STATISTICS.items()},
    }
    return report | {"verdict": verdict(report)}


def write_drift_report(report: dict[str, Any], out_dir: Path, stem: str) -> tuple[Path, Path]:
    """``out_dir/<stem>.drift.html`` and ``.drift.json``; existing files are never overwritten."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path, json_path = out_dir / f"{stem}.drift.html", out_dir / f"{stem}.drift.json"
    with open(json_path, "x", encoding="utf-8") as handle:  # "x": a report is never replaced
        json.dump(report, handle, indent=2, default=str, allow_nan=False)
    with open(html_path, "x", encoding="utf-8") as handle:
        handle.write(render_drift_html(report))
    return html_path, json_path


def format_value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def drift_markdown(report: dict[str, Any], title: str = "Drift report") -> str:
    """The report as markdown: the verdict, then one table row per column and one for the predictions."""

    def cell(text: Any) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = [f"# {cell(title)}", "", f"**{cell(report['verdict'])}**", ""]
    ctx = report.get("context") or {}
    lines += [f"- {cell(k)}: {cell(v)}" for k, v in ctx.items()] + [""]
    lines += ["| column | kind | statistic | value | threshold | drifted | n reference / current |",
              "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    rows = list(report["columns"])
    if report.get("prediction"):
        rows.append(report["prediction"] | {"column": "(prediction)"})
    for r in rows:
        lines.append(f"| {cell(r['column'])} | {r['kind']} | {r['statistic']} | {format_value(r['value'])} | "
                     f"{format_value(r['threshold'])} | {'**yes**' if r['drifted'] else 'no'} | "
                     f"{r['n_reference']} / {r['n_current']} |")  # fmt: skip
    for s in report.get("skipped", []):
        lines.append(f"| {cell(s['column'])} | {s['kind']} | skipped: {cell(s['reason'])} | | | | |")
    sample = report["sample"]
    lines += ["", f"Compared on seeded samples of at most {sample['max_rows']} rows per side "
              f"(reference {sample['reference_compared']} of {sample['reference_rows']}, "
              f"current {sample['current_compared']} of {sample['current_rows']})."]  # fmt: skip
    return "\n".join(lines)
