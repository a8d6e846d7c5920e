"""Dataset ingest, loading, hashing and the seeded split.

I/O stays at the edges (``ingest``, ``load_dataset``); ``split`` is pure.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

BUILTIN_SOURCES = ("sklearn:breast_cancer",)


class DataNotFoundError(FileNotFoundError):
    """The dataset file is not there; the message says how to get it."""


@dataclass(frozen=True)
class Splits:
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def read_source(source: str, reading: Any | None = None) -> pd.DataFrame:
    """Read a dataset source: a built-in name or a CSV/Parquet path.

    ``reading`` (a contract's ``ReadOptions``) gives a CSV's delimiter, decimal mark and encoding, so an
    export that is ``;``-separated with decimal commas is stored as its columns and numbers. Nothing else
    is cleaned here: validation reads the stored copy with the whole contract.
    """
    if source == "sklearn:breast_cancer":
        from sklearn.datasets import load_breast_cancer

        frame = load_breast_cancer(as_frame=True).frame
        return frame.astype({c: "float64" for c in frame.columns if c != "target"}).astype({"target": "int64"})
    if source.startswith("sklearn:"):
        raise ValueError(f"unknown built-in source {source!r}; known: {', '.join(BUILTIN_SOURCES)}")
    path = Path(source)
    if not path.is_file():
        raise DataNotFoundError(f"data source {source!r} does not exist")
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if path.suffix.lower() in (".csv", ".txt", ".data"):
        if reading is None:
            return pd.read_csv(path)
        return pd.read_csv(path, sep=reading.delimiter or ",", decimal=reading.decimal, encoding=reading.encoding)
    raise ValueError(f"data source {source!r}: expected a .csv or .parquet file")


def write_parquet(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` as Parquet with byte-stable output for the same input.

    The file is written next to its destination and renamed into place, so a
    crash never leaves a half-written dataset behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.reset_index(drop=True).to_parquet(tmp, index=False, engine="pyarrow", compression="zstd")
    tmp.replace(path)
    return path


def ingest(source: str, out_path: str | Path, reading: Any | None = None) -> Path:
    """Materialise ``source`` as Parquet at ``out_path``; unchanged bytes are not rewritten (``reading``: as
    :func:`read_source`)."""
    frame = read_source(source, reading)
    out_path = Path(out_path)
    tmp = out_path.with_name(f".{out_path.name}.new")
    write_parquet(frame, tmp)
    if out_path.is_file() and file_md5(out_path) == file_md5(tmp):
        tmp.unlink()
        log.info("ingest: %s unchanged (%d rows)", out_path, len(frame))
    else:
        tmp.replace(out_path)
        log.info("ingest: wrote %s (%d rows, %d columns)", out_path, len(frame), frame.shape[1])
    return out_path


def load_dataset(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(
            f"dataset {path} not found. Create it with `make run` (ingests the default dataset) "
            f"or fetch the tracked version with `dvc pull`."
        )
    return load_dataset_file(path)


def is_parquet(path: Path) -> bool:
    """Parquet by suffix or magic bytes (DVC's cache files have no suffix)."""
    with open(path, "rb") as handle:
        return path.suffix.lower() in (".parquet", ".pq") or handle.read(4) == b"PAR1"


def load_dataset_file(path: Path) -> pd.DataFrame:
    """Parquet (:func:`is_parquet`), else CSV."""
    return pd.read_parquet(path) if is_parquet(path) else pd.read_csv(path)


def file_md5(path: str | Path, chunk: int = 1 << 20) -> str:
    """MD5 of a file's bytes: the same hash DVC records for that file."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def find_in_dvc_cache(root: str | Path, md5: str) -> Path | None:
    """The file DVC cached under ``md5`` (DVC 3 layout), if this checkout has it."""
    candidate = Path(root) / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    return candidate if candidate.is_file() else None


MAX_STRATA = 10  # quantile bins of a regression target that the split keeps in proportion
MIN_EXPECTED_PER_PART = 2  # rows of each bin expected in the smallest part; fewer and a bin is too small


def split(
    frame: pd.DataFrame, target: str, test_size: float, val_size: float, seed: int, *, task: str = "binary"
) -> Splits:
    """Seeded stratified train/val/test split. ``val_size`` is a share of what remains after test.

    Row positions are split, not the frame, and each part is taken from ``frame`` once: the
    same rows in the same order as splitting the frame twice, without holding the
    train+val remainder as a third copy. Stratifying on label codes (sorted, as
    scikit-learn's own ``np.unique`` orders them) gives the same split as stratifying on
    the labels, without sorting millions of Python strings. A regression target (``task``)
    is stratified on quantile bins of its values instead (:func:`regression_strata`), so every
    part covers its whole range; too few rows for even two bins split unstratified.
    """
    from sklearn.model_selection import train_test_split

    if target not in frame.columns:
        raise KeyError(f"target column '{target}' is not in the dataset (columns: {', '.join(frame.columns)})")
    if task == "regression":
        strata = regression_strata(frame[target], test_size, val_size)
    else:
        strata, _ = pd.factorize(frame[target], sort=True, use_na_sentinel=False)
    rows = np.arange(len(frame))
    rest, test = train_test_split(rows, test_size=test_size, random_state=seed, stratify=strata)
    rest_strata = None if strata is None else strata[rest]
    train, val = train_test_split(rest, test_size=val_size, random_state=seed, stratify=rest_strata)
    return Splits(train=_take(frame, train), val=_take(frame, val), test=_take(frame, test))


def regression_strata(values: pd.Series, test_size: float, val_size: float) -> np.ndarray | None:
    """Quantile-bin codes of a numeric target to stratify on, or None when no binning fits.

    As many bins as ``MAX_STRATA`` allows such that every bin still sends ``MIN_EXPECTED_PER_PART``
    rows to the smallest of train, val and test (a stratified split refuses smaller ones). Missing
    values are a bin of their own.
    """
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    smallest = min(test_size, (1 - test_size) * val_size, (1 - test_size) * (1 - val_size))
    for n_bins in range(MAX_STRATA, 1, -1):
        codes = pd.qcut(numbers, n_bins, labels=False, duplicates="drop")
        codes = np.where(np.isnan(codes), -1, codes).astype(np.int64)
        _, counts = np.unique(codes, return_counts=True)
        if len(counts) > 1 and counts.min() * smallest >= MIN_EXPECTED_PER_PART:
            return codes
    return None


def _take(frame: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    return frame.iloc[rows].reset_index(drop=True)


def features_and_target(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, pd.Series]:
    return frame.drop(columns=[target]), frame[target]
