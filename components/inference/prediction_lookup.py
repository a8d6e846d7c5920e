"""Finding the scorings that hold an ``inference_id`` among the files ``mlops predict`` wrote.

A predictions folder holds ``<batch>-<md5>-<time>.parquet`` files with a ``.json`` metadata file
beside each (``components.inference.batch``). An id is looked up one row group at a time: only
the ``inference_id`` column is read, row groups whose min/max statistics exclude the id are
skipped unread, and the other columns are read only for a row group that holds it. Ids built from
a contract key repeat when the same customer is scored in several batches: every match is kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from components.inference.scoring import ID_COLUMNS
from components.release.lineage_report import chain_text, lineage

ID_COLUMN = "inference_id"


@dataclass(frozen=True)
class PredictionMatch:
    """One scored row carrying the id: where it came from, what was predicted, with which version."""

    inference_id: str
    predictions: Path  # the Parquet file
    metadata: Path | None  # the JSON beside it (None when it is gone)
    file_row: int  # the row's position in the predictions file
    batch_row: int | None  # its position in the scored batch
    batch_path: str | None
    batch_md5: str | None
    scored_at: str  # ISO time: the metadata's ``created``, else the file's modification time
    model_name: str | None
    model_version: str
    model_uri: str
    prediction: dict[str, Any] = field(default_factory=dict)  # label, probability[, proba_<class>...] or value

    def describe_prediction(self) -> str:
        """``label '>50K', probability 0.8312`` or ``value 41.2``."""
        return ", ".join(f"{k} {_show(x)}" for k, x in self.prediction.items())


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value) if isinstance(value, str) else str(value)


def prediction_files(folder: Path) -> list[Path]:
    """The published predictions files of ``folder`` (``.parquet.partial`` files are unfinished scorings)."""
    return sorted(p for p in folder.glob("*.parquet") if p.is_file()) if folder.is_dir() else []


def read_metadata(predictions: Path) -> dict[str, Any] | None:
    """The metadata JSON beside ``predictions``, or None when it is missing or unreadable."""
    path = predictions.with_suffix(".json")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def model_name_of(uri: str) -> str | None:
    """``models:/<name>/<version>`` -> name."""
    parts = uri.removeprefix("models:/").split("/")
    return "/".join(parts[:-1]) if uri.startswith("models:/") and len(parts) > 1 else None


def _may_hold(stats: Any, inference_id: str) -> bool:
    """False only when the row group's statistics prove the id is not in it."""
    if stats is None or not stats.has_min_max:
        return True
    low, high = stats.min, stats.max
    if isinstance(low, bytes) and isinstance(high, bytes):
        low, high = low.decode("utf-8", "replace"), high.decode("utf-8", "replace")
    if not (isinstance(low, str) and isinstance(high, str)):
        return True  # not a string column: its order is not the ids' order
    return low <= inference_id <= high  # UTF-8 byte order is code point order: Parquet's and Python's agree


def _matching_rows(handle: pq.ParquetFile, inference_id: str) -> list[tuple[int, dict[str, Any]]]:
    """(position in the file, the whole row) of every row whose id is ``inference_id``."""
    names = handle.schema_arrow.names
    if ID_COLUMN not in names:
        return []
    column, meta, out, offset = names.index(ID_COLUMN), handle.metadata, [], 0
    for group in range(meta.num_row_groups):
        n_rows = meta.row_group(group).num_rows
        if _may_hold(meta.row_group(group).column(column).statistics, inference_id):
            ids = handle.read_row_group(group, columns=[ID_COLUMN]).column(0)
            if ids.type != pa.string() and ids.type != pa.large_string():
                ids = pc.cast(ids, pa.string())
            hits = pc.indices_nonzero(pc.fill_null(pc.equal(ids, inference_id), False))
            if len(hits):  # only now the answer columns, and only of this row group
                rows = handle.read_row_group(group).take(hits).to_pylist()
                out += [(offset + int(i), row) for i, row in zip(hits.to_pylist(), rows, strict=True)]
        offset += n_rows
    return out


def _scored_at(meta: dict[str, Any] | None, predictions: Path) -> str:
    created = (meta or {}).get("created")
    if created:
        return str(created)
    return datetime.fromtimestamp(predictions.stat().st_mtime, UTC).isoformat(timespec="seconds")


def find_inference_id(inference_id: str, folder: str | Path, model: str | None = None) -> list[PredictionMatch]:
    """Every scored row of ``folder``'s predictions files whose id is ``inference_id``, newest first.

    ``model`` keeps only the scorings of that registered model. A file that cannot be read as
    Parquet (being written by another process, damaged) is skipped.
    """
    matches: list[PredictionMatch] = []
    for path in prediction_files(Path(folder)):
        meta = read_metadata(path)
        recorded = (meta or {}).get("model") or {}
        if model and recorded.get("name") not in (None, model):
            continue  # another model's scoring: not even opened
        try:
            rows = _matching_rows(pq.ParquetFile(path), inference_id)
        except (pa.ArrowException, OSError):
            continue
        batch = (meta or {}).get("batch") or {}
        for file_row, row in rows:
            uri = str(row.get("model_uri") or recorded.get("uri") or "")
            name = recorded.get("name") or model_name_of(uri)
            if model and name != model:
                continue
            matches.append(
                PredictionMatch(
                    inference_id=inference_id,
                    predictions=path.resolve(),
                    metadata=path.with_suffix(".json").resolve() if meta is not None else None,
                    file_row=file_row,
                    batch_row=None if row.get("batch_row") is None else int(row["batch_row"]),
                    batch_path=batch.get("path"),
                    batch_md5=batch.get("md5"),
                    scored_at=_scored_at(meta, path),
                    model_name=name,
                    model_version=str(row.get("model_version") or recorded.get("version") or ""),
                    model_uri=uri,
                    prediction={k: x for k, x in row.items() if k not in ID_COLUMNS},
                )
            )
    # ISO times of one format sort as times; within a second, the file written last is the newer scoring
    mtimes = {m.predictions: m.predictions.stat().st_mtime_ns for m in matches}
    return sorted(matches, key=lambda m: (m.scored_at, mtimes[m.predictions], m.file_row), reverse=True)


def inference_lineage(match: PredictionMatch) -> dict[str, str]:
    """The fields of one scored row's chain: its batch and prediction, then its version's lineage."""
    batch_row = "-" if match.batch_row is None else str(match.batch_row)
    fields = {
        "inference id": match.inference_id,
        "batch": f"{match.batch_path or '(no metadata)'} md5 {match.batch_md5 or '-'}",
        "batch row": batch_row,
        "scored at": match.scored_at,
        "predictions": f"{match.predictions} (row {match.file_row})",
        "metadata": str(match.metadata or "(missing)"),
        "prediction": match.describe_prediction() or "-",
    }
    name, version = match.model_name, match.model_version
    try:
        chain = lineage(name, version) if name else None
    except StopIteration:  # the version was deleted since, or the scoring was made against another store
        chain = None
    if chain is None:
        return fields | {"model version": f"{name or '?'} v{version} ({match.model_uri}; not in this registry)"}
    return fields | {"model version": chain.pop("model version")} | chain


def describe_inference(match: PredictionMatch) -> str:
    """``inference_lineage`` as printed by ``mlops lineage --inference-id``."""
    return chain_text(inference_lineage(match))
