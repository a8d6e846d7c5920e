"""What separates a CSV export's fields and its decimals, read off its first lines.

``contract infer`` uses it when no ``--delimiter`` is given, so a ``;``-separated export with decimal
commas (what spreadsheet software writes in much of Europe) is drafted as such instead of as one text
column, or as numbers silently read as text and left out of training. The contract then records both
(``reading.delimiter``, ``reading.decimal``) and every later read uses them. ``delimiter_hint`` turns a
failed read into a suggestion.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from components.data.file_kinds import open_text

DELIMITERS = (",", ";", "\t", "|")
SAMPLE_LINES = 50
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")
_DECIMAL_POINT = re.compile(r"[+-]?\d*\.\d+")


@dataclass(frozen=True)
class Dialect:
    delimiter: str = ","
    decimal: str = "."


def _sample(path: Path, encoding: str) -> list[str]:
    lines = []
    with open_text(path, encoding) as handle:
        for line in handle:
            if line.strip():
                lines.append(line.rstrip("\r\n"))
            if len(lines) >= SAMPLE_LINES:
                break
    return lines


def _widths(lines: list[str], delimiter: str) -> list[int]:
    return [len(row) for row in csv.reader(lines, delimiter=delimiter)]


def _even_delimiter(lines: list[str]) -> str | None:
    """The delimiter that splits every line into the same number (> 1) of fields, the most fields winning."""
    even = {}
    for delimiter in DELIMITERS:
        widths = _widths(lines, delimiter)
        if widths and widths[0] > 1 and len(set(widths)) == 1:
            even[delimiter] = widths[0]
    return max(even, key=lambda d: (even[d], d == ",")) if even else None


def sniff_dialect(path: str | Path, encoding: str = "utf-8") -> Dialect:
    """The delimiter that splits every sampled line evenly (``,`` when none does), and the decimal mark.

    Decimal commas are assumed only beside another delimiter, when some field is a number written with a
    comma and none with a point.
    """
    lines = _sample(Path(path), encoding)
    delimiter = _even_delimiter(lines)
    if delimiter is None or delimiter == ",":
        return Dialect()
    fields = [f.strip() for row in csv.reader(lines[1:], delimiter=delimiter) for f in row]
    comma = any(_DECIMAL_COMMA.fullmatch(f) for f in fields)
    point = any(_DECIMAL_POINT.fullmatch(f) for f in fields)
    return Dialect(delimiter=delimiter, decimal="," if comma and not point else ".")


def delimiter_hint(path: str | Path, encoding: str, used: str) -> str:
    """``; the file looks ';'-separated: ...`` when its lines split evenly on another delimiter, else ''."""
    try:
        delimiter = _even_delimiter(_sample(Path(path), encoding))
    except OSError:
        return ""
    if delimiter is None or delimiter == used:
        return ""
    decimal = sniff_dialect(path, encoding).decimal
    also = f" and reading.decimal: '{decimal}'" if decimal != "." else ""
    return (
        f"; the file looks {delimiter!r}-separated: set reading.delimiter: {delimiter!r}{also} in the contract, "
        "or draft it again with contract infer (which detects both)"
    )


def repeated_names(path: str | Path, encoding: str, delimiter: str) -> list[str]:
    """Header names that occur more than once (pandas reads the copies as ``name.1``, ``name.2``)."""
    lines = _sample(Path(path), encoding)[:1]
    names = [n.strip() for n in next(csv.reader(lines, delimiter=delimiter), [])]
    return sorted({n for n in names if names.count(n) > 1})
