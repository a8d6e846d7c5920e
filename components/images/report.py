"""The image validation report: the tabular report page plus sample images and the files set aside.

``write_image_report`` writes ``validation_report.html`` and ``.json`` with the
tabular writer (``report_html.write_report``: same header, rule tables and JSON
form), then adds two sections to both: a few sample images per class, inline as
base64 PNGs scaled up with ``image-rendering: pixelated`` so 8x8 pixels stay
sharp squares, and the table of files the rules flagged (quarantined, blocking,
warned) with why. The page needs nothing beside itself.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import pandas as pd

from components.images.validate import ImageValidation
from components.validation.report import jsonable
from components.validation.report_html import write_report

SAMPLES_PER_CLASS = 4
THUMBNAIL_PIXELS = 128
SAMPLE_PIXELS = 64  # shown width and height: an 8x8 digit at 8 screen pixels per image pixel

_CSS = """<style>
.samples{display:grid;grid-template-columns:max-content auto;gap:.4rem 1rem;align-items:center;margin:.5rem 0 1.5rem}
.samples figure{display:inline-block;margin:0 .4rem 0 0;text-align:center;font-size:.7rem}
.samples img{image-rendering:pixelated;image-rendering:crisp-edges;border:1px solid #ccc;object-fit:contain}
</style>"""


def sample_paths(kept: pd.DataFrame, per_class: int = SAMPLES_PER_CLASS) -> dict[str, list[str]]:
    """The first ``per_class`` kept files of each label, by path: the same samples on every run."""
    rows = kept.loc[kept["readable"], ["label", "path"]].sort_values(["label", "path"])
    return {str(label): group["path"].head(per_class).tolist() for label, group in rows.groupby("label", sort=True)}


def thumbnail_png(path: Path) -> bytes:
    """The image at ``path`` as a PNG of at most ``THUMBNAIL_PIXELS`` a side (JPEGs and the rest show anywhere)."""
    from PIL import Image

    buffer = io.BytesIO()
    with Image.open(path) as image:
        image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))  # shrinks only: a photo must not bloat the page
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def _samples_section(root: Path, samples: dict[str, list[str]]) -> str:
    rows = []
    for label, paths in samples.items():
        figures = []
        for rel in paths:
            data = base64.b64encode(thumbnail_png(root / rel)).decode("ascii")
            name = html.escape(Path(rel).name)
            figures.append(
                f'<figure><img src="data:image/png;base64,{data}" width="{SAMPLE_PIXELS}" '
                f'height="{SAMPLE_PIXELS}" alt="{html.escape(rel)}" title="{html.escape(rel)}">'
                f"<figcaption>{name}</figcaption></figure>"
            )
        rows.append(f"<b>{html.escape(label)}</b><div>{''.join(figures)}</div>")
    body = "".join(rows) if rows else "<p>No readable images to show.</p>"
    return f'<h2 id="samples">Sample images per class</h2><div class="samples">{body}</div>'


def _files_section(validation: ImageValidation) -> str:
    findings = validation.findings
    quarantined, blocking = validation.files("quarantine"), validation.files("block")
    summary = f"{len(quarantined)} quarantined, {len(blocking)} blocking the run"
    parts = [f'<h2 id="files">Files flagged by the contract</h2><p>{summary}.</p>']
    if len(findings):
        head = "<tr><th>file</th><th>rule</th><th>severity</th><th>why</th></tr>"
        rows = "".join(
            f"<tr><td><code>{html.escape(str(r.path))}</code></td><td>{html.escape(str(r.rule))}</td>"
            f"<td>{html.escape(str(r.severity))}</td><td>{html.escape(str(r.detail))}</td></tr>"
            for r in findings.itertuples(index=False)
        )
        parts.append(f"<table>{head}{rows}</table>")
    if validation.resized:
        listed = ", ".join(f"<code>{html.escape(p)}</code>" for p in validation.resized)
        parts.append(f"<p>Resized when read (resize: fit): {listed}.</p>")
    return "".join(parts)


def write_image_report(
    validation: ImageValidation,
    root: str | Path,
    directory: str | Path,
    *,
    title: str,
    header: dict[str, str] | None = None,
    samples_per_class: int = SAMPLES_PER_CLASS,
) -> Path:
    """Write the report of ``validation`` for the images under ``root``; return the HTML path.

    ``header`` is as for :func:`~components.validation.report_html.write_report` (see ``report_header``).
    The JSON twin gains ``"files"`` (the findings), ``"resized"`` and ``"samples"`` (paths per label).
    """
    path = write_report(validation.report, directory, title=title, header=header)
    samples = sample_paths(validation.kept, samples_per_class)
    extra = _CSS + _samples_section(Path(root), samples) + _files_section(validation)
    # Our sections go last, just before the tabular page closes its body.
    before, body_end, after = path.read_text(encoding="utf-8").rpartition("</body>")
    if not body_end:
        raise ValueError(f"{path}: the tabular report has no </body> to add the image sections before")
    path.write_text(before + extra + body_end + after, encoding="utf-8")
    twin = path.with_suffix(".json")
    data = json.loads(twin.read_text(encoding="utf-8"))
    data |= {
        "files": jsonable(validation.findings.to_dict(orient="records")),
        "resized": list(validation.resized),
        "samples": samples,
    }
    twin.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path
