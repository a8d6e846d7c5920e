"""Where a scored batch goes: a fresh, never reused output name, and predictions published whole or not at all.

:func:`claim_outputs` claims ``<out>/<batch>-<md5[:12]>-<UTC time>[-n]`` atomically, so a new
batch (or the same batch again) never overwrites an earlier one. :class:`PredictionWriter`
appends scored chunks to a hidden ``.parquet.partial`` file and publishes it by a rename only
when the whole batch passed.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


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
