"""Scoring a batch file with one model version, a chunk at a time, and writing what was scored.

``score_batch`` reads the batch in chunks (Parquet record batches, CSV ``chunksize``), so memory
holds one chunk, the drift sample and running totals whatever the file size. Each chunk is
normalised and validated (``components.inference.validation``), its kept rows are scored and
appended to a Parquet file. Nothing is published until the whole batch passed: a blocking
failure leaves no predictions, only the validation report and a metadata file saying why.

Every prediction carries a stable ``inference_id`` (:func:`inference_ids`). Outputs are named
after the batch, its md5 and the time, and a name is claimed atomically, so a new batch (or the
same batch again) never overwrites an earlier one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from components.data.contract import Contract, DataReadError
from components.data.dataset import file_md5
from components.data.reading import normalise
from components.inference.validation import BatchChecks, prepare_chunk
from components.model import tasks
from components.validation.report import DataRejectedError
from components.validation.report_html import write_report

DEFAULT_CHUNK_ROWS = 250_000  # each chunk pays ~0.5 s of fixed GX cost: much smaller chunks cost more than they save
ID_COLUMNS = ["inference_id", "batch_row", "model_version", "model_uri"]
Predict = Callable[[pd.DataFrame], pd.DataFrame]  # raw feature rows -> the pyfunc's prediction columns


def inference_ids(rows: pd.DataFrame, keys: list[str], md5: str) -> np.ndarray:
    """Stable ids for ``rows``, whose index holds their positions in the batch.

    With contract ``keys``: the key values (joined by ``|`` for a compound key), so a late label
    carrying the key joins without a lookup. Without: the first 16 hex digits of the BLAKE2b hash
    of ``"{batch md5}:{row}"``, the same whatever the chunk size, different in every other batch.
    """
    if keys:
        missing = [k for k in keys if k not in rows.columns]
        if missing:
            raise KeyError(f"key column(s) {', '.join(missing)} of the contract are not in the batch")
        parts = [rows[k].astype("str").to_numpy(dtype=object) for k in keys]
        return parts[0] if len(parts) == 1 else np.array(["|".join(row) for row in zip(*parts, strict=True)])
    return np.array(
        [hashlib.blake2b(f"{md5}:{row}".encode(), digest_size=8).hexdigest() for row in rows.index], dtype=object
    )


def prediction_columns(task: str, classes: list[Any]) -> list[str]:
    """The pyfunc's answer columns for ``task`` (binary label, probability; multiclass also proba_<class>;
    regression value)."""
    if tasks.check_task(task) == tasks.REGRESSION:
        return ["value"]
    extra = [tasks.proba_column(c) for c in classes] if task == tasks.MULTICLASS else []
    return ["label", "probability", *extra]


def score_chunk(predict: Predict, rows: pd.DataFrame, ids: np.ndarray, version: str, uri: str) -> pd.DataFrame:
    """``rows`` scored: the id columns, then the model's answer columns, one row per input row."""
    answers = predict(rows)
    head = pd.DataFrame(
        {"inference_id": ids, "batch_row": rows.index.to_numpy(dtype=np.int64), "model_version": version,
         "model_uri": uri},
        index=rows.index,
    )  # fmt: skip
    return pd.concat([head, answers.set_axis(rows.index)], axis=1)


def read_chunks(path: Path, contract: Contract, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The batch as raw frames of at most ``chunk_rows`` rows, read with the contract's reading options."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            handle = pq.ParquetFile(path)
            names = handle.schema_arrow.names
            # Extra columns are a rule to report unless allowed; when allowed, read only the contract's.
            columns = [n for n in names if n in set(contract.column_names())] if contract.allow_extra_columns else None
            batches = handle.iter_batches(batch_size=chunk_rows, columns=columns)
            yield from (batch.to_pandas() for batch in batches)
        except (pa.ArrowException, OSError) as err:
            raise DataReadError(f"{path}: not a readable Parquet file: {err}") from None
        return
    opts = contract.reading
    try:
        reader = pd.read_csv(path, sep=opts.delimiter or ",", na_values=opts.na_values, keep_default_na=True,
                             skipinitialspace=opts.strip_whitespace, encoding=opts.encoding, index_col=False,
                             chunksize=chunk_rows)  # fmt: skip
        with reader:
            for chunk in reader:
                chunk.columns = [str(c).strip() for c in chunk.columns]
                yield chunk
    except pd.errors.EmptyDataError:
        raise DataReadError(f"{path}: file is empty") from None
    except UnicodeDecodeError as err:
        raise DataReadError(f"{path}: not valid {opts.encoding}: byte at offset {err.start} of a chunk") from None
    except pd.errors.ParserError as err:
        raise DataReadError(f"{path}: malformed CSV: {err}") from None


def claim_outputs(out_dir: Path, data_path: Path, md5: str, now: datetime | None = None) -> Path:
    """A fresh base path ``out_dir/<batch>-<md5[:12]>-<UTC time>[-n]`` for this scoring's files.

    Creating ``<base>.validation/`` claims the name atomically (two scorings in the same second get
    ``-1``, ``-2``); a name whose predictions or metadata already exist is never reused.
    """
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", data_path.stem).strip("-") or "batch"  # no dots: suffixes follow
    stamp = f"{(now or datetime.now(UTC)):%Y%m%dT%H%M%SZ}"
    out_dir.mkdir(parents=True, exist_ok=True)
    for n in range(1000):
        base = out_dir / (f"{stem}-{md5[:12]}-{stamp}" + (f"-{n}" if n else ""))
        if base.with_suffix(".parquet").exists() or base.with_suffix(".json").exists():
            continue
        try:
            base.with_suffix(".validation").mkdir()
        except FileExistsError:
            continue
        return base
    raise FileExistsError(f"{out_dir}: no free output name for {data_path.name} at {stamp}")


class PredictionWriter:
    """Appends scored chunks to ``<base>.parquet.partial``; :meth:`commit` publishes it, :meth:`abort` drops it."""

    def __init__(self, base: Path, columns: list[str]) -> None:
        self.path, self.partial = base.with_suffix(".parquet"), base.with_suffix(".parquet.partial")
        self.columns, self.rows = columns, 0
        self._writer: pq.ParquetWriter | None = None

    def write(self, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.partial, table.schema)
        self._writer.write_table(table.cast(self._writer.schema))  # a chunk's nulls may infer another type
        self.rows += len(frame)

    def commit(self) -> Path:
        if self._writer is None:  # nothing scored (every row quarantined): an empty file with the columns
            pq.write_table(pa.Table.from_pandas(pd.DataFrame(columns=self.columns), preserve_index=False), self.partial)
        else:
            self._writer.close()
        if self.path.exists():
            raise FileExistsError(f"{self.path}: predictions already exist; refusing to overwrite them")
        os.replace(self.partial, self.path)
        return self.path

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self.partial.unlink(missing_ok=True)


@contextmanager
def timed(timings: dict[str, float], phase: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[phase] = timings.get(phase, 0.0) + time.perf_counter() - start


def drift_summary(drift: dict | None, note: str) -> dict[str, Any]:
    """What the metadata says about drift: the reference, the verdict, the share and per-column statistics."""
    if drift is None:
        return {"reference": None, "verdict": f"skipped: {note}"}
    columns, drifted = drift["columns"], drift["drifted"]
    share = len(drifted) / len(columns) if columns else 0.0
    verdict = f"drift in {len(drifted)} of {len(columns)} columns ({', '.join(drifted)})" if drifted else "no drift"
    return {"reference": note, "verdict": verdict, "drifted": drifted, "share": round(share, 4),
            "n_reference": drift["n_reference"], "columns": drift["columns"]}  # fmt: skip


def score_batch(
    data_path: str | Path,
    *,
    contract: Contract,
    predict: Predict,
    model: dict[str, Any],
    out_dir: str | Path,
    reference: pd.DataFrame | None = None,
    reference_note: str = "no reference data",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    context: dict[str, Any] | None = None,
    timings: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Validate and score ``data_path`` chunk by chunk; return the metadata written beside the predictions.

    ``model`` needs ``version``, ``uri``, ``task`` and ``classes`` (name and the rest are recorded
    as given); ``context`` is recorded too (where the contract came from, ...). Raises
    ``DataRejectedError`` (after writing the report and the metadata, and no predictions) when a
    blocking rule fails, ``DataReadError`` when the file cannot be read as the contract says.
    """
    path, out_dir, timings = Path(data_path), Path(out_dir), dict(timings or {})
    if not path.is_file():
        raise DataReadError(f"{path}: file not found")
    with timed(timings, "md5"):
        md5 = file_md5(path)
    base = claim_outputs(out_dir, path, md5)
    report_dir = base.with_suffix(".validation")
    checks = BatchChecks(contract, reference, report_dir / "quarantine.csv")
    writer = PredictionWriter(base, ID_COLUMNS + prediction_columns(model["task"], model.get("classes") or []))
    n_read, failures, chunks = 0, [], iter(read_chunks(path, contract, chunk_rows))
    try:
        while True:
            with timed(timings, "read"):
                raw = next(chunks, None)
            if raw is None:
                break
            with timed(timings, "validate"):
                raw.index = pd.RangeIndex(n_read, n_read + len(raw))  # batch row positions, for ids and lineage
                frame = normalise(prepare_chunk(raw, checks.contract), checks.contract)
                kept, failures = checks.check(frame)
            n_read += len(raw)
            if failures:
                break  # the batch is rejected: read and score no further
            if len(kept):
                with timed(timings, "score"):
                    ids = inference_ids(kept, contract.keys, md5)
                    scored = score_chunk(predict, kept, ids, str(model["version"]), str(model["uri"]))
                with timed(timings, "write"):
                    writer.write(scored)
        if n_read == 0:
            raise DataReadError(f"{path}: header only, no data rows")
        with timed(timings, "batch_checks_and_drift"):
            report = checks.report(stopped_early=bool(failures))
            html = write_report(report, report_dir, title=f"Validation of batch {path.name}")
        if report.success:
            with timed(timings, "write"):
                predictions = writer.commit()
        else:
            writer.abort()  # scored chunks of a batch rejected as a whole are never published
    except BaseException:
        writer.abort()
        with contextlib.suppress(OSError):  # the claimed folder, if nothing was written in it
            report_dir.rmdir()
        raise
    metadata = {
        "status": "scored" if report.success else "rejected",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "batch": {"path": str(path.resolve()), "md5": md5, "chunk_rows": chunk_rows},
        "model": model,
        **(context or {}),
        "predictions": str(predictions) if report.success else None,
        "inference_id": f"key {'|'.join(contract.keys)}" if contract.keys else "blake2b-64 of '<batch md5>:<row>'",
        "rows": {"read": n_read, "scored": writer.rows if report.success else 0, "quarantined": report.n_quarantined},
        "validation": {
            "report": str(html),
            "quarantine": str(report_dir / "quarantine.csv") if report.n_quarantined else None,
            "failures": [r.describe() for r in report.failures()],
            "warnings": [r.describe() for r in report.warnings()],
        },
        "drift": drift_summary(report.drift, reference_note if not failures else "a chunk was rejected first"),
        "timings": {k: round(x, 3) for k, x in timings.items()},
    }
    with open(base.with_suffix(".json"), "x", encoding="utf-8") as handle:  # "x": never overwrite
        json.dump(metadata, handle, indent=2, default=str)
    if not report.success:
        raise DataRejectedError(report, html)
    return metadata | {"metadata_path": str(base.with_suffix(".json"))}
