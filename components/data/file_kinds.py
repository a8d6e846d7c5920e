"""What kind of file a dataset path holds, before it is read as CSV.

Exports arrive compressed (``export.csv.gz`` from a bucket) or in formats we do not read (a spreadsheet, a
JSON dump). pandas reads a compressed CSV by its suffix; our own looks at a file's text (the delimiter, the
last line, an undecodable byte) open it the same way through :func:`open_text`. A format we do not read is
refused naming it and what to export instead, rather than parsed as CSV into a wall of nonsense columns.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zipfile
import zlib
from pathlib import Path
from typing import IO

from components.data.errors import DataReadError

COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}  # and ".zip": one CSV inside
# pandas' own suffix-based reading raises these for a compressed file that was cut short or is damaged
DAMAGED = (EOFError, OSError, zlib.error, lzma.LZMAError, zipfile.BadZipFile)
_OTHER_FORMATS = {
    ".xlsx": "an Excel workbook", ".xlsm": "an Excel workbook", ".xls": "an Excel workbook",
    ".ods": "a spreadsheet", ".json": "JSON", ".jsonl": "JSON lines", ".ndjson": "JSON lines",
    ".feather": "Feather", ".arrow": "Arrow", ".avro": "Avro", ".orc": "ORC", ".h5": "HDF5", ".hdf5": "HDF5",
    ".pkl": "a pickle", ".pickle": "a pickle", ".sav": "SPSS", ".dta": "Stata", ".sas7bdat": "SAS",
}  # fmt: skip
_MAGIC = {b"\xd0\xcf\x11\xe0": "an Excel workbook (xls)", b"ARROW1": "Arrow/Feather", b"\x89HDF": "HDF5"}


def is_compressed(path: Path) -> bool:
    return path.suffix.lower() in (*COMPRESSED, ".zip")


def damaged(path: Path, err: BaseException) -> BaseException:
    """What to raise for ``err`` (one of ``DAMAGED``) while pandas read ``path``: a read error naming the
    archive when the file is compressed, else ``err`` itself (an OSError of a plain file is not ours to name)."""
    if not is_compressed(path):
        return err
    return DataReadError(f"{path}: the compressed file is damaged or cut short ({err})")


def check_tabular(path: Path) -> None:
    """Refuse a file that is not CSV (plain or compressed) or Parquet, naming what it looks like."""
    if path.suffix.lower() == ".zip":
        open_text(path, "utf-8").close()  # exactly one file inside, or the error says what is
    kind = _OTHER_FORMATS.get(path.suffix.lower())
    if kind is None and not is_compressed(path):
        with open(path, "rb") as handle:
            head = handle.read(8)
        kind = next((k for magic, k in _MAGIC.items() if head.startswith(magic)), None)
        if head.startswith(b"PK\x03\x04"):
            kind = "a zip archive or a spreadsheet"
    if kind is not None:
        raise DataReadError(f"{path}: looks like {kind}, not CSV or Parquet: export it as CSV (or Parquet)")


def open_text(path: Path, encoding: str, errors: str = "replace") -> IO[str]:
    """``path`` as text, decompressed as pandas would by its suffix."""
    suffix = path.suffix.lower()
    if suffix in COMPRESSED:
        return COMPRESSED[suffix](path, "rt", encoding=encoding, errors=errors, newline="")
    if suffix == ".zip":
        try:
            archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile as err:
            raise DataReadError(f"{path}: not a readable zip archive ({err})") from None
        members = [n for n in archive.namelist() if not n.endswith("/")]
        if len(members) != 1:
            archive.close()
            raise DataReadError(f"{path}: a zip archive must hold exactly one CSV, found {len(members)} files")
        return io.TextIOWrapper(archive.open(members[0]), encoding=encoding, errors=errors, newline="")
    return open(path, encoding=encoding, errors=errors, newline="")


def raw_bytes(path: Path) -> bytes:
    """The file's content, decompressed."""
    with open_text(path, "latin-1") as handle:  # latin-1 maps every byte to one character and back
        return handle.read().encode("latin-1")
