"""Scoring a batch file with one model version, a chunk at a time, and writing what was scored.

``score_batch`` reads the batch in chunks (Parquet record batches, CSV ``chunksize``), so memory
holds a few chunks, the drift sample and running totals whatever the file size. Each chunk is
normalised and validated (``components.inference.validation``) in this process and in order;
its kept rows are scored where ``batch.parallel`` says (here, or on Dask workers:
``components.inference.parallel_scoring``), appended in order to a Parquet file, and offered
with their predictions to a bounded sample for the drift report
(``components.monitoring.batch_monitor``). Nothing is published until the whole batch passed: a
blocking failure leaves no predictions, only the validation report, what the drift report can
say of the rows scored before, and a metadata file saying why.

Every prediction carries a stable ``inference_id`` (:func:`inference_ids`). Outputs are named
after the batch, its md5 and the time, and a name is claimed atomically
(``components.inference.batch_output``), so a new batch (or the same batch again) never
overwrites an earlier one.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from components.config import ParallelSettings
from components.data.contract import Contract, DataReadError
from components.data.dataset import file_md5
from components.data.file_kinds import DAMAGED, check_tabular, damaged
from components.data.reading import normalise
from components.inference.batch_output import PredictionWriter, claim_outputs
from components.inference.scoring import ID_COLUMNS, Predict, prediction_columns
from components.inference.validation import BatchChecks, prepare_chunk
from components.monitoring.batch_monitor import RowSample, batch_drift_report
from components.monitoring.drift_report import MAX_ROWS as DRIFT_SAMPLE_ROWS
from components.monitoring.reference_scores import prediction_column
from components.validation.report import DataRejectedError
from components.validation.report_html import report_header, write_report

if TYPE_CHECKING:
    from components.inference.parallel_scoring import ScoringCluster

DEFAULT_CHUNK_ROWS = 250_000  # each chunk pays ~0.5 s of fixed GX cost: much smaller chunks cost more than they save


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
    check_tabular(path)
    try:
        reader = pd.read_csv(path, sep=opts.delimiter or ",", decimal=opts.decimal, na_values=opts.na_values,
                             keep_default_na=True, skipinitialspace=opts.strip_whitespace, encoding=opts.encoding,
                             index_col=False, chunksize=chunk_rows)  # fmt: skip
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
    except DAMAGED as err:
        raise damaged(path, err) from None


@contextmanager
def timed(timings: dict[str, float], phase: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[phase] = timings.get(phase, 0.0) + time.perf_counter() - start


class ValidatedChunks:
    """The batch's chunks, read and validated in order in this process; iterating yields each chunk's kept rows.

    Rows are indexed by their position in the batch. Every chunk yielded is also kept in
    :attr:`kept` until its scored rows come back (in the same order) and it is popped. A chunk
    with a blocking failure ends the iteration: nothing after it is read or scored.
    """

    def __init__(self, path: Path, checks: BatchChecks, chunk_rows: int, timings: dict[str, float]) -> None:
        self.path, self.checks, self.chunk_rows, self.timings = path, checks, chunk_rows, timings
        self.n_read, self.failures = 0, []
        self.kept: deque[pd.DataFrame] = deque()

    def __iter__(self) -> Iterator[pd.DataFrame]:
        chunks = iter(read_chunks(self.path, self.checks.contract, self.chunk_rows))
        while True:
            with timed(self.timings, "read"):
                raw = next(chunks, None)
            if raw is None:
                return
            with timed(self.timings, "validate"):
                raw.index = pd.RangeIndex(self.n_read, self.n_read + len(raw))  # batch row positions, for ids
                frame = normalise(prepare_chunk(raw, self.checks.contract), self.checks.contract)
                kept, self.failures = self.checks.check(frame)
            self.n_read += len(raw)
            if self.failures:
                return  # the batch is rejected: read and score no further
            if len(kept):
                self.kept.append(kept)
                yield kept

    def inside(self) -> float:
        """Seconds spent so far reading and validating (timed here, while a caller waits on the iteration)."""
        return self.timings.get("read", 0.0) + self.timings.get("validate", 0.0)


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
    drift_share: float = 0.5,
    drift_rows: int = DRIFT_SAMPLE_ROWS,
    parallel: ParallelSettings | None = None,
    cluster: ScoringCluster | None = None,
) -> dict[str, Any]:
    """Validate and score ``data_path`` chunk by chunk; return the metadata written beside the predictions.

    ``model`` needs ``version``, ``uri``, ``task`` and ``classes`` (name and the rest are recorded
    as given); ``context`` is recorded too (where the contract came from, ...). ``reference`` (the
    version's training data) is what drift is measured against: ``<base>.drift.html`` and
    ``.drift.json`` compare a seeded sample of ``drift_rows`` scored rows with it; the dataset
    drifted when more than ``drift_share`` of the columns did. The returned metadata also holds
    the whole report under ``drift_report`` (None when skipped). Raises ``DataRejectedError``
    (after writing the reports and the metadata, and no predictions) when a blocking rule fails,
    ``DataReadError`` when the file cannot be read as the contract says.

    ``parallel`` (``batch.parallel``; default local) says where the chunks are scored, ``cluster``
    a started ``ScoringCluster`` of it to use (else a Dask engine starts one for this batch). The
    predictions are the same on every engine; reading, validation, the drift sample and writing
    stay in this process, in the batch's order.
    """
    from components.inference.parallel_scoring import ChunkScorer, map_chunks, where_scored

    path, out_dir, timings = Path(data_path), Path(out_dir), dict(timings or {})
    if not path.is_file():
        raise DataReadError(f"{path}: file not found")
    with timed(timings, "md5"):
        md5 = file_md5(path)
    base = claim_outputs(out_dir, path, md5)
    report_dir = base.with_suffix(".validation")
    checks = BatchChecks(contract, reference, report_dir / "quarantine.csv")
    writer = PredictionWriter(base, ID_COLUMNS + prediction_columns(model["task"], model.get("classes") or []))
    sample, answer = RowSample(drift_rows), prediction_column(model["task"])
    parallel = parallel or ParallelSettings()
    validated = ValidatedChunks(path, checks, chunk_rows, timings)
    uri, version, keys = str(model["uri"]), str(model["version"]), tuple(contract.keys)
    if parallel.engine == "dask":  # workers load the version by URI from this process's MLflow store
        scorer = ChunkScorer.for_model(uri, version, model["task"], md5, keys, predict=predict)
    else:
        scorer = ChunkScorer(uri, version, model["task"], md5, keys, predict=predict)
    try:
        with contextlib.closing(map_chunks(scorer, iter(validated), parallel, cluster=cluster)) as results:
            while True:
                start, inside = time.perf_counter(), validated.inside()
                scored = next(results, None)  # reads and validates the next chunks, then waits for this one
                timings["score"] = (timings.get("score", 0.0) + time.perf_counter() - start
                                    - (validated.inside() - inside))  # fmt: skip
                if scored is None:
                    break
                kept = validated.kept.popleft()
                with timed(timings, "drift_sample"):
                    sample.add(kept.drop(columns=[contract.target]), scored[answer])
                with timed(timings, "write"):
                    writer.write(scored)
        n_read, failures = validated.n_read, validated.failures
        if n_read == 0:
            raise DataReadError(f"{path}: header only, no data rows")
        with timed(timings, "batch_checks"):
            report = checks.report(stopped_early=bool(failures), sample=sample.rows)
            header = report_header(dataset=path.resolve(), md5=md5, contract=contract.name,
                                   contract_source=(context or {}).get("contract", {}).get("source"),
                                   drift_reference=reference_note)  # fmt: skip
            html = write_report(report, report_dir, title=f"Validation of batch {path.name}", header=header)
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
    batch = {"path": str(path.resolve()), "md5": md5, "chunk_rows": chunk_rows, "parallel": where_scored(parallel)}
    rejected = None if report.success else "; ".join(r.describe() for r in report.failures())[:500] or "failed"
    with timed(timings, "drift"):
        drift, drift_section = batch_drift_report(base, sample=sample, reference=reference,
                                                  reference_note=reference_note, contract=contract, predict=predict,
                                                  model=model, batch=batch, drift_share=drift_share,
                                                  rejected=rejected, cache=out_dir / ".cache")  # fmt: skip
    metadata = {
        "status": "scored" if report.success else "rejected",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "batch": batch,
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
        "drift": drift_section,
        "timings": {k: round(x, 3) for k, x in timings.items()},
    }
    with open(base.with_suffix(".json"), "x", encoding="utf-8") as handle:  # "x": never overwrite
        json.dump(metadata, handle, indent=2, default=str)
    if not report.success:
        raise DataRejectedError(report, html)
    return metadata | {"metadata_path": str(base.with_suffix(".json")), "drift_report": drift}
