"""`mlops contract infer` and `mlops validate` through the CLI entry point, on tiny generated files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.data.contract import load_contract
from flows.cli.main import main


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # --params defaults to ./params.yaml: keep the CLI away from the project


def _frame(n: int = 80, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "income": rng.normal(50_000, 8_000, n).round(2),
            "city": rng.choice(["north", "south", "east"], n),
            "label": np.where(np.arange(n) % 3 == 0, "yes", "no"),
        }
    )


def _infer(data: Path, out: Path, target: str = "label", *extra: str) -> int:
    return main(["contract", "infer", "--data", str(data), "--target", target, "--out", str(out), *extra])


def _validate(data: Path, contract: Path, report_dir: Path) -> int:
    return main(["validate", "--data", str(data), "--contract", str(contract), "--report-dir", str(report_dir)])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_infer_writes_a_contract_that_loads(tmp_path: Path, suffix: str) -> None:
    data = tmp_path / f"ref{suffix}"
    frame = _frame()
    frame.to_csv(data, index=False) if suffix == ".csv" else frame.to_parquet(data, index=False)
    out = tmp_path / "contracts" / "ref.yaml"

    assert _infer(data, out) == 0

    contract = load_contract(out)
    assert contract.target == "label"
    assert contract.column_names() == ["age", "income", "city", "label"]
    assert contract.labels == ["no", "yes"]
    assert contract.column("city").allowed == ["east", "north", "south"]
    assert contract.column("age").dtype == "int"


def test_infer_refuses_to_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data, out = tmp_path / "ref.csv", tmp_path / "ref.yaml"
    _frame().to_csv(data, index=False)
    out.write_text("# hand-edited, keep me\n")

    assert _infer(data, out) == 2
    err = capsys.readouterr().err
    assert "exists" in err and "--force" in err
    assert out.read_text() == "# hand-edited, keep me\n"

    assert _infer(data, out, "label", "--force") == 0
    assert load_contract(out).target == "label"


def test_infer_names_a_missing_target(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data, out = tmp_path / "ref.csv", tmp_path / "ref.yaml"
    _frame().to_csv(data, index=False)

    assert _infer(data, out, "churned") == 2

    err = capsys.readouterr().err
    assert "churned" in err and "not in" in err
    assert not out.exists()


def test_validate_accepts_good_data_and_writes_the_report(tmp_path: Path, capsys) -> None:
    ref, batch, contract = tmp_path / "ref.csv", tmp_path / "batch.csv", tmp_path / "c.yaml"
    _frame(seed=0).to_csv(ref, index=False)
    _frame(seed=1).to_csv(batch, index=False)  # a new batch from the same distribution
    assert _infer(ref, contract) == 0
    capsys.readouterr()

    assert _validate(batch, contract, tmp_path / "report") == 0

    assert "accepted" in capsys.readouterr().out
    assert (tmp_path / "report" / "validation_report.html").is_file()
    assert (tmp_path / "report" / "validation_report.json").is_file()


def test_validate_rejects_bad_data_naming_rule_and_column(tmp_path: Path, capsys) -> None:
    ref, batch, contract = tmp_path / "ref.csv", tmp_path / "bad.parquet", tmp_path / "c.yaml"
    _frame().to_csv(ref, index=False)
    assert _infer(ref, contract) == 0
    bad = _frame(seed=2)
    bad.loc[3, "age"] = 1_000  # far outside the inferred range
    bad.loc[5, "city"] = None  # city was complete in the reference: not nullable
    bad.to_parquet(batch, index=False)
    capsys.readouterr()

    assert _validate(batch, contract, tmp_path / "report") == 4

    out = capsys.readouterr().out
    assert re.search(r"block\s+range\s+age\s", out), out
    assert re.search(r"block\s+not_null\s+city\s", out), out
    assert "REJECTED" in out


MESSY = """\
age, city, income, label
34, north, 51000.5, no.
41, ?, 48000, yes.
29, south, ?, no.
55, east, 62000.25, yes.
38, north, 47000, no.
"""

MESSY_CONTRACT = """\
name: messy
target: label
labels: ['no', 'yes']
rows: {min: 3, max: null}
reading: {na_values: ['?'], strip_whitespace: true, label_strip_suffix: '.', delimiter: ','}
columns:
  age: {dtype: int, min: 18, max: 99}
  city: {dtype: category, nullable: true, max_null_fraction: 0.5, allowed: [east, north, south]}
  income: {dtype: float, nullable: true, max_null_fraction: 0.5, min: 0}
  label: {dtype: category, feature: false, not_constant: false}
"""


def test_messy_csv_validates_with_declared_reading_options(tmp_path: Path, capsys) -> None:
    data, contract = tmp_path / "messy.csv", tmp_path / "messy.yaml"
    data.write_text(MESSY)
    contract.write_text(MESSY_CONTRACT)

    assert _validate(data, contract, tmp_path / "report") == 0
    assert "accepted" in capsys.readouterr().out

    # The same file without the label suffix option: "no." is not a label, and the CLI says so.
    contract.write_text(MESSY_CONTRACT.replace("label_strip_suffix: '.'", "label_strip_suffix: null"))
    assert _validate(data, contract, tmp_path / "report2") == 4
    assert re.search(r"block\s+labels\s+label\s", capsys.readouterr().out)


def test_quarantined_rows_are_set_aside_with_their_rule(tmp_path: Path, capsys) -> None:
    data, contract = tmp_path / "batch.csv", tmp_path / "c.yaml"
    frame = _frame(n=60)
    frame.loc[7, "city"] = "atlantis"
    frame.to_csv(data, index=False)
    # An unseen city moves its row to quarantine.csv; the rest passes (up to max_quarantine_fraction).
    contract.write_text(MESSY_CONTRACT.replace("south]}", "south], on_unseen: quarantine}"))

    assert _validate(data, contract, tmp_path / "report") == 0

    assert "1 rows quarantined" in capsys.readouterr().out
    moved = pd.read_csv(tmp_path / "report" / "quarantine.csv")
    assert moved["city"].tolist() == ["atlantis"]
    assert moved["_quarantine_rule"].tolist() == ["allowed:city"]


def test_infer_guesses_the_task_prints_why_and_writes_it_into_the_contract(tmp_path: Path, capsys) -> None:
    from tests.data.task_frames import diabetes_frame

    data, out = tmp_path / "diabetes.csv", tmp_path / "diabetes.yaml"
    diabetes_frame().to_csv(data, index=False)

    assert _infer(data, out, "progression") == 0

    printed = capsys.readouterr().out
    assert "task: regression ('progression' is numeric with 214 distinct values)" in printed
    assert "task: regression  # guessed: 'progression' is numeric with 214 distinct values; edit if wrong" in (
        out.read_text()
    )
    contract = load_contract(out)
    assert contract.task == "regression" and contract.labels == [] and contract.column("progression").numeric
    assert _validate(data, out, tmp_path / "report") == 0

    assert _infer(data, out, "progression", "--force", "--task", "multiclass") == 0
    assert load_contract(out).task == "multiclass"
    assert "task: multiclass  # binary | multiclass | regression" in out.read_text()
    assert _infer(data, out, "progression", "--force", "--task", "ranking") == 2
    assert "--task 'ranking'" in capsys.readouterr().err


def test_infer_guesses_the_task_after_cutting_label_suffixes(tmp_path: Path, capsys) -> None:
    data, out = tmp_path / "messy.csv", tmp_path / "messy.yaml"
    data.write_text(MESSY.replace("yes.\n29", "yes\n29"))  # "yes." and "yes": one label once the suffix is cut
    assert _infer(data, out, "label", "--na-values", "?", "--label-strip-suffix", ".") == 0
    assert "task: binary ('label' holds 2 labels (no, yes))" in capsys.readouterr().out
    assert load_contract(out).labels == ["no", "yes"]


def test_a_european_export_with_unlabelled_rows_is_drafted_and_accepted_as_it_is(tmp_path: Path, capsys) -> None:
    """';'-separated, decimal commas, an accented column name and rows whose outcome is not known yet:
    `contract infer` with no options drafts a contract that reads the numbers as numbers and sets the
    unlabelled rows aside, and the very file it came from is accepted."""
    frame = _frame(n=90).rename(columns={"city": "région"})
    frame.loc[frame.index[::15], "label"] = None  # 6 of 90
    data, out = tmp_path / "export.csv", tmp_path / "export.yaml"
    frame.to_csv(data, index=False, sep=";", decimal=",")
    assert "," in data.read_text().splitlines()[1]  # the incomes are written 51234,56

    assert _infer(data, out) == 0

    printed = capsys.readouterr().out
    assert "read as ';'-separated with decimal commas" in printed
    assert "6 of 90 rows have no 'label': the draft quarantines them" in printed
    contract = load_contract(out)
    assert (contract.reading.delimiter, contract.reading.decimal) == (";", ",")
    assert contract.column("income").dtype == "float" and "income" in contract.feature_columns()
    assert contract.column("label").severity == {"not_null": "quarantine"}
    assert "région:" in out.read_text(encoding="utf-8")

    assert _validate(data, out, tmp_path / "report") == 0

    assert "6 rows quarantined" in capsys.readouterr().out
    moved = pd.read_csv(tmp_path / "report" / "quarantine.csv")
    assert moved["label"].isna().all() and set(moved["_quarantine_rule"]) == {"not_null:label"}


def test_a_semicolon_export_read_as_commas_names_the_delimiter_to_set(tmp_path: Path, capsys) -> None:
    data, out = tmp_path / "export.csv", tmp_path / "export.yaml"
    _frame().to_csv(data, index=False, sep=";", decimal=",")
    assert _infer(data, out, "label", "--delimiter", ",") == 4  # told ",": the file disagrees
    err = capsys.readouterr().err
    assert "looks ';'-separated: set reading.delimiter: ';' and reading.decimal: ','" in err
    assert _infer(data, out, "label", "--delimiter", ";", "--decimal", ",") == 0
    assert "read as" not in capsys.readouterr().out  # both given: nothing guessed
    assert load_contract(out).column("income").dtype == "float"
    with pytest.raises(SystemExit, match="2"):
        _infer(data, out, "label", "--force", "--decimal", ";")  # argparse: not one of the choices
    assert "invalid choice: ';'" in capsys.readouterr().err


def test_infer_says_which_columns_it_keeps_out_of_training_and_why(tmp_path: Path, capsys) -> None:
    frame = _frame(n=60).assign(order_id=range(5000, 5060), note=[f"call back {i}" for i in range(60)])
    data, out = tmp_path / "ref.csv", tmp_path / "ref.yaml"
    frame.to_csv(data, index=False)

    assert _infer(data, out) == 0

    printed = capsys.readouterr().out
    assert (
        "not trained on (feature: false in the draft): 'order_id' (an identifier, the contract's key), "
        "'note' (text with 60 distinct values)"
    ) in printed
    assert load_contract(out).feature_columns() == ["age", "income", "city"]


def test_infer_says_when_the_header_repeats_a_name(tmp_path: Path, capsys) -> None:
    data, out = tmp_path / "ref.csv", tmp_path / "ref.yaml"
    frame = _frame(n=30)
    data.write_text("age,income,age,label\n" + "\n".join(f"{a},{i},{a + 1},{y}" for a, i, y in
                    zip(frame["age"], frame["income"], frame["label"], strict=True)) + "\n")  # fmt: skip

    assert _infer(data, out) == 0

    assert "the header repeats 'age': the draft names the copies <name>.1" in capsys.readouterr().out
    assert load_contract(out).column_names() == ["age", "income", "age.1", "label"]
    _frame(n=30).to_parquet(tmp_path / "ref.parquet")
    assert _infer(tmp_path / "ref.parquet", tmp_path / "p.yaml") == 0
    assert "repeats" not in capsys.readouterr().out
