"""Delimiter and decimal mark read off a CSV's first lines, and what a wrong guess at read time says."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from components.data.contract import ColumnRule, Contract, ContractError, DataReadError, ReadOptions, load_contract
from components.data.contract_yaml import save_contract
from components.data.csv_dialect import Dialect, delimiter_hint, sniff_dialect
from components.data.reading import read_dataset, read_with_contract

EUROPEAN = "amount;city;label\n12,5;Köln;yes\n3,25;Lyon;no\n7;Köln;no\n-0,5;Gent;yes\n"


def _write(tmp_path: Path, text: str, name: str = "export.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _contract(reading: ReadOptions) -> Contract:
    columns = (
        ColumnRule("amount", dtype="float"),
        ColumnRule("city", dtype="category", allowed=["Gent", "Köln", "Lyon"]),
        ColumnRule("label", dtype="category", feature=False, not_constant=False),
    )
    return Contract(name="eu", columns=columns, target="label", labels=["no", "yes"], reading=reading)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (EUROPEAN, Dialect(";", ",")),
        ("a;b;y\n1.5;x;1\n2.25;z;0\n", Dialect(";", ".")),  # semicolons, decimal points
        ("a;b;y\n1;x;1\n2;z;0\n", Dialect(";", ".")),  # whole numbers: nothing says comma
        ("a\tb\ty\n1,5\tx\t1\n2\tz\t0\n", Dialect("\t", ",")),
        ("a|b|y\n1|x|1\n2|z|0\n", Dialect("|", ".")),
        ('name,amount,y\n"Smith; John",1.5,1\n"Doe; Jane",2,0\n', Dialect(",", ".")),  # ';' only inside quotes
        ("a,b;c,y\n1,2;3,4\n", Dialect(",", ".")),  # ',' splits every line into 3, ';' into 2
        ("only\n1\n2\n", Dialect(",", ".")),  # one column: nothing to detect
        ("", Dialect(",", ".")),
    ],
)
def test_sniffed_dialect(tmp_path, text, expected):
    assert sniff_dialect(_write(tmp_path, text)) == expected


def test_uneven_lines_fall_back_to_comma(tmp_path):
    # ';' splits the header into 3 and a row into 2: not evenly, so not a guess
    assert sniff_dialect(_write(tmp_path, "a;b;c\n1;2\n3;4;5\n")) == Dialect()


def test_a_european_export_reads_as_numbers_with_its_reading_options(tmp_path):
    path = _write(tmp_path, EUROPEAN)
    frame = read_with_contract(path, _contract(ReadOptions(delimiter=";", decimal=",")))
    assert frame["amount"].dtype == "float64"
    assert frame["amount"].tolist() == [12.5, 3.25, 7.0, -0.5]
    assert frame["city"].tolist() == ["Köln", "Lyon", "Köln", "Gent"]
    # the same file kept for later (drift reference): read the same way, also without a suffix (DVC's cache)
    cached = tmp_path / "ab" / "cdef0123"
    cached.parent.mkdir()
    cached.write_bytes(path.read_bytes())
    pd.testing.assert_frame_equal(read_dataset(cached, _contract(ReadOptions(delimiter=";", decimal=","))), frame)


def test_reading_it_as_comma_separated_says_what_it_looks_like(tmp_path):
    path = _write(tmp_path, EUROPEAN)
    with pytest.raises(DataReadError, match="malformed CSV") as err:
        read_with_contract(path, _contract(ReadOptions()))
    assert "looks ';'-separated: set reading.delimiter: ';' and reading.decimal: ','" in str(err.value)
    assert delimiter_hint(path, "utf-8", ";") == ""  # right already: nothing to add
    assert delimiter_hint(_write(tmp_path, "a,b\n1,2\n", "plain.csv"), "utf-8", ",") == ""


def test_decimal_mark_is_checked_and_round_trips_through_yaml(tmp_path):
    with pytest.raises(ContractError, match="reading.decimal: ';' is not"):
        ReadOptions(delimiter="\t", decimal=";")
    with pytest.raises(ContractError, match="reading.decimal: ',' is also the delimiter"):
        ReadOptions(decimal=",")  # no delimiter: ","
    save_contract(_contract(ReadOptions(delimiter=";", decimal=",")), tmp_path / "eu.yaml")
    back = load_contract(tmp_path / "eu.yaml")
    assert (back.reading.delimiter, back.reading.decimal) == (";", ",")
    assert "Köln" in (tmp_path / "eu.yaml").read_text(encoding="utf-8")  # written as such, not escaped
