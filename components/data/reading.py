"""Reading CSV and Parquet files with a contract's reading options and declared dtypes.

``read_table`` reads with reading options only (to draft a contract), ``read_with_contract``
reads and normalises, ``normalise`` cleans text and casts a frame already in memory, and
``model_frame`` keeps the columns a model sees. Files that cannot be read as data raise
:class:`~components.data.contract.DataReadError` with a message naming the problem.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from components.data.contract import Contract, DataReadError, ReadOptions
from components.data.csv_dialect import delimiter_hint
from components.data.file_kinds import DAMAGED, check_tabular, damaged, is_compressed, raw_bytes

_NUMPY_DTYPE = {"float": np.dtype("float64"), "int": np.dtype("int64")}  # what _cast makes of "float"/"int"


def _locate_bad_bytes(data: bytes, encoding: str, sep: str, header: list[str]) -> str:
    """Say where the first undecodable byte is: line, column and byte offset."""
    try:
        data.decode(encoding)
    except UnicodeDecodeError as err:
        pos = err.start
        line_start = data.rfind(b"\n", 0, pos) + 1
        field_no = data.count(sep.encode(), line_start, pos)
        column = header[field_no] if field_no < len(header) else f"field {field_no + 1}"
        line_no = data.count(b"\n", 0, pos) + 1
        return f"byte 0x{data[pos]:02x} at offset {pos} (line {line_no}, column '{column}')"
    return "undecodable bytes"


def _check_last_line(path: Path, sep: str, n_fields: int, header: list[str], encoding: str) -> None:
    """A last line with fewer fields than the header means the file was cut short (a compressed file says
    so itself: its end marker is missing)."""
    if is_compressed(path):
        return
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - (1 << 16)))
        tail = handle.read().decode(encoding, errors="replace")
    lines = [line for line in tail.splitlines() if line.strip()]
    if not lines:
        return
    parsed = next(csv.reader([lines[-1]], delimiter=sep, skipinitialspace=True))
    if len(parsed) < n_fields:
        raise DataReadError(
            f"{path}: last line has {len(parsed)} of {n_fields} fields (truncated file?); "
            f"column '{header[len(parsed)]}' and after are missing"
        )


def _read_csv(path: Path, opts: ReadOptions, expected: list[str] | None) -> pd.DataFrame:
    sep = opts.delimiter or ","
    check_tabular(path)
    with open(path, "rb") as handle:
        if not handle.read(4096).strip():
            raise DataReadError(f"{path}: file is empty")
    try:
        with warnings.catch_warnings():  # extra fields: pandas only warns and drops data
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                path,
                sep=sep,
                decimal=opts.decimal,
                na_values=opts.na_values,
                keep_default_na=True,
                skipinitialspace=opts.strip_whitespace,
                encoding=opts.encoding,
                index_col=False,
                low_memory=False,
            )
    except pd.errors.EmptyDataError:
        raise DataReadError(f"{path}: file is empty") from None
    except UnicodeDecodeError:
        data = raw_bytes(path) if is_compressed(path) else path.read_bytes()
        first = data.split(b"\n", 1)[0].decode(opts.encoding, errors="replace")
        header = [h.strip() for h in first.rstrip("\r").split(sep)]
        where = _locate_bad_bytes(data, opts.encoding, sep, header)
        raise DataReadError(
            f"{path}: not valid {opts.encoding}: {where}; an export in another encoding (Windows tools often "
            "write cp1252) needs reading.encoding in the contract, or contract infer --encoding"
        ) from None
    except DAMAGED as err:
        raise damaged(path, err) from None
    except pd.errors.ParserError as err:
        hint = delimiter_hint(path, opts.encoding, sep)
        raise DataReadError(f"{path}: malformed CSV: {str(err).strip()}{hint}") from None
    except pd.errors.ParserWarning:
        hint = delimiter_hint(path, opts.encoding, sep)
        raise DataReadError(f"{path}: malformed CSV: some rows have more fields than the header{hint}") from None
    frame.columns = _unique_names([str(c).strip() for c in frame.columns])
    if expected is not None and not set(frame.columns) & set(expected):
        header = " ".join(map(str, frame.columns))
        likely = [d for d in (",", ";", "\t", "|") if d != sep and d in header]
        hint = f"; the header looks {likely[0]!r}-separated" if likely else ""
        raise DataReadError(
            f"{path}: none of the contract's columns were found with delimiter {sep!r}: wrong delimiter? "
            f"(header parsed as {list(frame.columns)[:5]}{hint})"
        )
    if len(frame):
        _check_last_line(path, sep, frame.shape[1], list(frame.columns), opts.encoding)
    return frame


def _unique_names(names: list[str]) -> list[str]:
    """Header names made unique the way pandas does it (``id``, ``id.1``): it only does so for
    exact repeats, and stripping can make two names equal ("id" and "id "). Two equal names
    would make ``frame[name]`` a frame and crash normalising; a renamed copy is reported by
    the ``extra_columns`` rule instead."""
    seen: set[str] = set()
    out = []
    for name in names:
        unique, n = name, 0
        while unique in seen:
            n += 1
            unique = f"{name}.{n}"
        seen.add(unique)
        out.append(unique)
    return out


def _is_text(series: pd.Series) -> bool:
    """The string dtype, or objects that are all str. An object column of Python bools (how
    pandas reads True/False with blanks) is not text: it must become "True"/"False" strings,
    or a category contract drafted from that very file rejects it."""
    if pd.api.types.is_string_dtype(series):
        return True
    return pd.api.types.is_object_dtype(series) and pd.api.types.infer_dtype(series, skipna=True) == "string"


# What a bool column may hold in a file (compared lower-cased and stripped; numbers by value).
BOOL_WORDS: dict[Any, bool] = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}
BOOL_WORDS |= {1: True, 0: False}


def _cast(series: pd.Series, dtype: str) -> pd.Series:
    """Cast to the declared dtype; values that do not fit leave the column as it is."""
    # ``dtype in``: numpy reads ``float64 == None`` as true, which returned float columns declared
    # bool/category/string uncast (1.0/0.0/blank flags, numeric codes with a blank).
    if dtype in _NUMPY_DTYPE and isinstance(series.dtype, np.dtype) and series.dtype == _NUMPY_DTYPE[dtype]:
        return series  # already what the cast below would produce: skip its full-column passes
    if series.isna().all():
        return series
    if dtype in ("float", "int"):
        if pd.api.types.is_bool_dtype(series):
            return series
        numbers = series if pd.api.types.is_numeric_dtype(series) else pd.to_numeric(series, errors="coerce")
        if numbers.notna().sum() < series.notna().sum():
            return series  # some values are not numbers: the dtype rule reports them
        integral = dtype == "int" and numbers.notna().all() and (numbers % 1 == 0).all()
        return numbers.astype("int64") if integral else numbers.astype("float64")
    if dtype == "bool":
        if pd.api.types.is_bool_dtype(series):
            return series
        # Numbers are matched by value: a 1/0 column with a blank is read as 1.0/0.0.
        keys = series if pd.api.types.is_numeric_dtype(series) else series.astype("str").str.strip().str.lower()
        mapped = keys.map(BOOL_WORDS).where(series.notna())
        if mapped.notna().sum() < series.notna().sum():
            return series  # some values are not booleans: the dtype rule reports them
        # Blanks stay missing (nullable "boolean"), so not_null/null_fraction judge them, not dtype.
        return mapped.astype("boolean") if mapped.isna().any() else mapped.astype(bool)
    if _is_text(series):
        return series
    if pd.api.types.is_float_dtype(series) and (series.dropna() % 1 == 0).all():
        series = series.astype("Int64")
    return series.astype("str").where(series.notna())


def _clean_text(series: pd.Series, opts: ReadOptions, suffix: str | None) -> pd.Series:
    """Strip whitespace, blank missing-value tokens and cut the label suffix of a text column.

    For the pandas string dtype the decision is made on the distinct values (a few dozen for a
    category, against millions of rows) and each step runs over the rows only when some value
    needs it; a clean column comes back as it is, uncopied. Object columns always take every step,
    as before: stripping is also what turns them into the string dtype.
    """
    strip = opts.strip_whitespace
    if isinstance(series.dtype, pd.StringDtype):
        values = pd.Series(series.unique(), dtype=series.dtype)
        stripped = values.str.strip() if strip else values
        strip = strip and not stripped.equals(values)
        tokens = bool(opts.strip_whitespace and stripped.isin(opts.na_values).any())
        suffix = suffix if suffix and stripped.str.endswith(suffix).fillna(False).any() else None
    else:
        tokens = strip
    if strip:
        series = series.str.strip()
    if tokens:
        series = series.where(~series.isin(opts.na_values))
    if suffix:
        series = series.str.removesuffix(suffix)
    return series


def normalise(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """Apply reading options and declared dtypes to a freshly read frame (returns a new frame).

    Columns that already have what the contract asks for are passed through without a copy. A
    classification target loses its label suffix; a regression target is read as float whatever
    its declared numeric dtype, since it is a quantity every model predicts as float.
    """
    opts = contract.reading
    rules = {c.name: c for c in contract.columns}
    labels = contract.is_classification
    out = {}
    for col in frame.columns:
        s = frame[col]
        if pd.api.types.is_string_dtype(s):  # object columns count only if every value is a str
            suffix = opts.label_strip_suffix if col == contract.target and labels else None
            s = _clean_text(s, opts, suffix)
        rule = rules.get(col)
        dtype = "float" if col == contract.target and not labels else rule.dtype if rule is not None else None
        out[col] = _cast(s, dtype) if dtype is not None else s
    # copy=False: the columns are new Series or unchanged ones; copy-on-write keeps the input safe.
    return pd.DataFrame(out, index=frame.index, copy=False)


def model_frame(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """The columns a model sees: the contract's features present in ``frame``, then the target.

    Columns marked ``feature: false`` (ids, free text) are validated but never trained on. Text
    features the contract declares ``category`` become pandas categoricals: the same values (one-hot
    encoded identically) held as small integer codes, so splitting and encoding millions of rows
    moves bytes, not strings (benchmarks/RESULTS.md, scale).
    """
    features = [c for c in contract.feature_columns() if c in frame.columns]
    out = frame[[*features, contract.target]]
    categorical = [c for c in features if contract.column(c).dtype == "category" and _is_str(out[c])]
    return out.astype(dict.fromkeys(categorical, "category")) if categorical else out


def _is_str(series: pd.Series) -> bool:
    return isinstance(series.dtype, pd.StringDtype)


def _parquet_columns(path: Path, contract: Contract) -> list[str] | None:
    """The columns to read: all of them (None) when extra columns are a rule to report, else the contract's."""
    if not contract.allow_extra_columns:
        return None
    wanted = set(contract.column_names())
    return [name for name in pq.read_schema(path).names if name in wanted]  # file order; reads the footer only


def read_table(path: str | Path, reading: ReadOptions) -> pd.DataFrame:
    """Read a CSV or Parquet file with reading options only (no contract yet: used to draft one)."""
    path = Path(path)
    if not path.is_file():
        raise DataReadError(f"{path}: file not found")
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    return _read_csv(path, reading, None)


def read_with_contract(path: str | Path, contract: Contract) -> pd.DataFrame:
    """Read a CSV or Parquet file with the contract's reading options and dtypes.

    Raises DataReadError for files that cannot be read as data (empty, header
    only, wrong delimiter, undecodable bytes, truncated). Values that do not fit
    a declared numeric dtype stay as text so validation reports them. Parquet
    files are read column-wise: only the contract's columns when it allows extra
    ones (validation would ignore the rest anyway).
    """
    path = Path(path)
    if not path.is_file():
        raise DataReadError(f"{path}: file not found")
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(path, columns=_parquet_columns(path, contract))
        except Exception as err:  # pyarrow raises several unrelated types
            raise DataReadError(f"{path}: not a readable Parquet file: {err}") from None
    else:
        frame = _read_csv(path, contract.reading, contract.column_names())
    if len(frame) == 0:
        raise DataReadError(f"{path}: header only, no data rows (columns: {', '.join(map(str, frame.columns))})")
    return normalise(frame, contract)


def read_dataset(path: str | Path, contract: Contract | None) -> pd.DataFrame:
    """A dataset file kept for later (a champion's training data, for drift), read as training read it.

    Parquet by suffix or magic bytes (DVC's cache files have no suffix); a CSV with the contract's reading
    options (a ``;``-separated export with decimal commas stays one), then normalised. No header check: an
    old version's columns are what the drift comparison reports. Without a contract, as pandas reads it.
    """
    from components.data.dataset import is_parquet, load_dataset_file

    path = Path(path)
    if contract is None:
        return load_dataset_file(path)
    frame = pd.read_parquet(path) if is_parquet(path) else _read_csv(path, contract.reading, None)
    return normalise(frame, contract)
