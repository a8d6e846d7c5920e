"""Exports as they arrive: compressed, in another encoding, or in a format we do not read."""

from __future__ import annotations

import bz2
import gzip
import lzma
import re
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from components.data.contract import ColumnRule, Contract, DataReadError, ReadOptions
from components.data.csv_dialect import Dialect, sniff_dialect
from components.data.reading import read_with_contract
from flows.cli.main import main

TEXT = "amount,city,label\n12.5,Köln,yes\n3.25,Lyon,no\n7,Köln,no\n-0.5,Gent,yes\n"


def _contract(**reading) -> Contract:
    columns = (
        ColumnRule("amount", dtype="float"),
        ColumnRule("city", dtype="category", allowed=["Gent", "Köln", "Lyon"]),
        ColumnRule("label", dtype="category", feature=False, not_constant=False),
    )
    return Contract(name="t", columns=columns, target="label", labels=["no", "yes"], reading=ReadOptions(**reading))


def _zip(path: Path, data: bytes) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("export.csv", data)


@pytest.mark.parametrize(
    ("suffix", "write"),
    [(".gz", gzip.compress), (".bz2", bz2.compress), (".xz", lzma.compress), (".zip", None)],
)
def test_a_compressed_csv_reads_as_the_plain_one(tmp_path, suffix, write):
    plain = tmp_path / "export.csv"
    plain.write_text(TEXT, encoding="utf-8")
    packed = tmp_path / f"export.csv{suffix}"
    if write is None:
        _zip(packed, TEXT.encode())
    else:
        packed.write_bytes(write(TEXT.encode()))
    pd.testing.assert_frame_equal(read_with_contract(packed, _contract()), read_with_contract(plain, _contract()))
    semicolons = tmp_path / f"eu.csv{suffix}"
    eu = TEXT.replace(",", ";").replace(".", ",").encode()
    _zip(semicolons, eu) if write is None else semicolons.write_bytes(write(eu))
    assert sniff_dialect(semicolons) == Dialect(";", ",")


def test_a_cut_short_or_ambiguous_archive_is_a_read_error(tmp_path):
    whole = gzip.compress((TEXT * 2000).encode())
    (tmp_path / "cut.csv.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataReadError, match="compressed file is damaged or cut short"):
        read_with_contract(tmp_path / "cut.csv.gz", _contract())
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as archive:
        archive.writestr("a.csv", TEXT)
        archive.writestr("b.csv", TEXT)
    with pytest.raises(DataReadError, match="exactly one CSV, found 2"):
        sniff_dialect(tmp_path / "two.zip")
    with pytest.raises(DataReadError, match="exactly one CSV, found 2"):
        read_with_contract(tmp_path / "two.zip", _contract())
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DataReadError, match="not a readable zip archive"):
        read_with_contract(tmp_path / "broken.zip", _contract())


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("export.json", b'[{"amount": 1}]', "JSON"),
        ("export.xlsx", None, "an Excel workbook"),
        ("export.dat", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel workbook (xls)"),
        ("export", None, "a zip archive or a spreadsheet"),  # a workbook renamed without its suffix
    ],
)
def test_another_format_is_refused_naming_it(tmp_path, name, content, kind):
    path = tmp_path / name
    if content is None:
        _zip(path, b"<workbook/>")
    else:
        path.write_bytes(content)
    with pytest.raises(DataReadError, match=f"looks like {re.escape(kind)}, not CSV or Parquet: export it as CSV"):
        read_with_contract(path, _contract())


def test_another_encoding_is_named_and_read_once_declared(tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes(TEXT.encode("cp1252"))
    with pytest.raises(DataReadError, match="not valid utf-8: byte 0xf6 .*line 2, column 'city'.*reading.encoding"):
        read_with_contract(path, _contract())
    assert read_with_contract(path, _contract(encoding="cp1252"))["city"].tolist() == ["Köln", "Lyon", "Köln", "Gent"]


def test_infer_takes_an_encoding_and_lists_at_most_twenty_columns(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "export.csv").write_bytes(TEXT.encode("cp1252"))
    argv = ["contract", "infer", "--data", "export.csv", "--target", "label", "--out", "c.yaml"]
    assert main(argv) == 4
    assert main([*argv, "--encoding", "cp1252"]) == 0
    assert main([*argv, "--force", "--encoding", "klingon"]) == 2
    assert "reading.encoding: 'klingon' is not an encoding Python knows" in capsys.readouterr().err
    assert "encoding: cp1252" in (tmp_path / "c.yaml").read_text(encoding="utf-8")

    pd.DataFrame({f"col{i}": [1, 2] for i in range(45)}).to_csv(tmp_path / "wide.csv", index=False)
    capsys.readouterr()
    assert main(["contract", "infer", "--data", "wide.csv", "--target", "label", "--out", "w.yaml"]) == 2
    assert "col0, col1," in (err := capsys.readouterr().err) and "col19, ... (25 more))" in err
