"""The validation gate: GX suite, report, quarantine, basic contract, HTML/JSON report."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from components.data.contract import ColumnRule, Contract, load_contract
from components.data.dataset import read_source
from components.data.reading import read_with_contract
from components.validation.gx_engine import build_suite, compile_checks
from components.validation.report import DataRejectedError
from components.validation.report_html import render_html, write_report
from components.validation.validate import QUARANTINE_COLUMN, basic_contract, validate_frame


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    return read_source("sklearn:breast_cancer")


@pytest.fixture(scope="module")
def cancer_contract() -> Contract:
    return load_contract("contracts/breast_cancer.yaml")


def _small_contract(**kw) -> Contract:
    columns = (
        ColumnRule("x", dtype="float", min=0, max=10),
        ColumnRule("kind", dtype="category", allowed=["a", "b"], on_unseen="quarantine"),
        ColumnRule("y", dtype="int", feature=False),
    )
    return Contract(name="small", columns=columns, target="y", labels=[0, 1], **kw)


def _small_frame(n: int = 40) -> pd.DataFrame:
    return pd.DataFrame({"x": np.linspace(0, 10, n), "kind": ["a", "b"] * (n // 2), "y": [0, 1, 1, 0] * (n // 4)})


def test_breast_cancer_contract_accepts_the_dataset_and_small_samples(cancer, cancer_contract):
    report, kept = validate_frame(cancer, cancer_contract, reference=cancer)
    assert report.success and not report.warnings() and len(kept) == len(cancer)
    assert report.drift["drifted"] == []
    for sample in (cancer.sample(120, random_state=7), cancer.head(120)):
        report, _ = validate_frame(sample, cancer_contract)
        assert report.success, [r.describe() for r in report.failures()]


def test_suite_is_a_gx_suite_with_rule_names(cancer_contract):
    suite = build_suite(cancer_contract)
    types = {e.expectation_type for e in suite.expectations}
    assert {"expect_column_values_to_be_between", "expect_column_values_to_not_be_null"} <= types
    assert {"expect_table_row_count_to_be_between", "expect_column_values_to_be_in_set"} <= types
    rules = {e.meta["rule"] for e in suite.expectations}
    assert {"range", "not_null", "row_count", "labels", "min_classes"} <= rules
    assert len(suite.expectations) == len(compile_checks(cancer_contract))


def test_report_is_json_and_rejection_names_rule_column_and_path():
    bad = _small_frame()
    bad.loc[:20, "x"] = -5.0
    report, _ = validate_frame(bad, _small_contract())
    assert not report.success
    failure = report.failures()[0]
    assert (failure.rule, failure.column, failure.severity) == ("range", "x", "block")
    assert failure.unexpected_count == 21 and failure.examples == [-5.0] * 5  # only a few examples
    assert failure.expectation == "expect_column_values_to_be_between"
    data = json.loads(json.dumps(report.to_dict()))
    assert data["success"] is False and data["contract"] == "small"
    error = DataRejectedError(report, "out/validation_report.html")
    assert "range on 'x'" in str(error) and "out/validation_report.html" in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.report == report


def test_quarantine_removes_rows_writes_them_and_leaves_input_alone(tmp_path):
    frame = _small_frame()
    frame.loc[[3, 5], "kind"] = "zzz"
    before = frame.copy()
    for name in ("q.csv", "q.parquet"):
        report, kept = validate_frame(
            frame, _small_contract(max_quarantine_fraction=0.1), quarantine_path=tmp_path / name
        )
        assert report.success and report.n_quarantined == 2 and report.quarantine_fraction == 0.05
        assert [(r.rule, r.column) for r in report.quarantined()] == [("allowed", "kind")]
        assert list(kept.index) == [i for i in frame.index if i not in (3, 5)]
        out = pd.read_csv(tmp_path / name) if name.endswith("csv") else pd.read_parquet(tmp_path / name)
        assert out[QUARANTINE_COLUMN].tolist() == ["allowed:kind"] * 2 and out["kind"].tolist() == ["zzz"] * 2
    pd.testing.assert_frame_equal(frame, before)


def test_quarantine_over_the_limit_blocks():
    frame = _small_frame()
    frame.loc[:9, "kind"] = "zzz"
    report, kept = validate_frame(frame, _small_contract(max_quarantine_fraction=0.1))
    assert not report.success and len(kept) == 30
    assert [(r.rule, r.column) for r in report.failures()] == [("quarantine_share", None)]


def test_severity_overrides_turn_blocks_into_warnings():
    contract = _small_contract(severity={"row_count": "warn"})
    report, _ = validate_frame(_small_frame(4), replace(contract, min_rows=10))
    assert report.success and [(r.rule, r.severity) for r in report.warnings()] == [("row_count", "warn")]


def test_basic_contract_checks_columns_nulls_labels_and_rows():
    frame = _small_frame()
    contract = basic_contract(frame, "y", min_rows=10)
    assert validate_frame(frame, contract)[0].success
    with_nulls = frame.assign(x=frame["x"].where(frame.index > 2))
    assert [(r.rule, r.column) for r in validate_frame(with_nulls, contract)[0].failures()] == [("not_null", "x")]
    tolerant = basic_contract(with_nulls, "y", max_null_fraction=0.1)
    assert validate_frame(with_nulls, tolerant)[0].success
    single = frame.assign(y=1)
    failed = validate_frame(single, basic_contract(single, "y"))[0].failures()
    assert [(r.rule, r.column) for r in failed] == [("min_classes", "y")]
    assert [r.rule for r in validate_frame(frame.head(5), contract)[0].failures()] == ["row_count"]
    missing = basic_contract(frame.drop(columns="y"), "y")
    assert [(r.rule, r.column) for r in validate_frame(frame.drop(columns="y"), missing)[0].failures()] == [
        ("exists", "y")
    ]


def test_html_report_names_failing_rule_and_column_and_escapes(tmp_path):
    frame = _small_frame()
    frame.loc[0, "x"] = 99.0
    frame.loc[1, "kind"] = "<script>alert(1)</script>"
    report, _ = validate_frame(frame, _small_contract(max_quarantine_fraction=0.5), reference=_small_frame())
    page = render_html(report, title="Nightly <batch>")
    assert "REJECTED" in page and "Blocking failures" in page
    assert "<td>range</td><td>x</td>" in page
    assert "<script>alert" not in page and "&lt;script&gt;" in page and "Nightly &lt;batch&gt;" in page
    assert "Drift" in page
    path = write_report(report, tmp_path / "report", title="t")
    assert path.name == "validation_report.html" and path.read_text().startswith("<!DOCTYPE html>")
    data = json.loads((tmp_path / "report" / "validation_report.json").read_text())
    assert any(r["rule"] == "range" and not r["success"] for r in data["results"])


def test_constant_check_looks_past_its_first_rows():
    """A column whose first thousand rows agree still varies if a later row differs, and vice versa."""
    n = 3000
    contract = _small_contract()
    late = _small_frame(n).assign(x=np.r_[np.full(n - 1, 5.0), 6.0], kind=["a"] * (n - 1) + ["b"])
    report, _ = validate_frame(late, contract)
    not_constant = {r.column: r for r in report.results if r.rule == "not_constant"}
    assert not_constant["x"].success and not_constant["kind"].success
    flat = _small_frame(n).assign(x=5.0, kind="a")
    flat.loc[1500, "x"] = np.nan  # nulls do not count as a second value
    report, _ = validate_frame(flat, contract)
    failed = {r.column: r.observed for r in report.failures() if r.rule == "not_constant"}
    assert set(failed) == {"x", "kind"}
    assert "5.0" in failed["x"] and failed["kind"] == "every value is 'a'"


def test_nothing_quarantined_keeps_every_row_without_touching_the_input():
    frame = _small_frame()
    before = frame.copy()
    report, kept = validate_frame(frame, _small_contract())
    assert report.success and report.n_quarantined == 0
    pd.testing.assert_frame_equal(kept, frame)
    assert kept is not frame
    kept.loc[0, "x"] = 99.0
    pd.testing.assert_frame_equal(frame, before)


def test_blanks_in_flag_and_code_columns_are_nulls_not_dtype_failures(tmp_path):
    """A blank turns a True/False column into Python objects and a 1/2 code column into floats on
    reading; the contract's nullable rules must judge the blanks, not the dtype rule."""
    path = tmp_path / "flags.csv"
    rows = [f"{flag},{code},{flag},{'ab'[i % 2]}" for i, (flag, code) in enumerate([("True", 1), ("False", 2)] * 10)]
    rows[3] = ",,,b"
    path.write_text("flag,code,raw_flag,y\n" + "\n".join(rows) + "\n")
    columns = (
        ColumnRule("flag", dtype="bool", nullable=True),
        ColumnRule("code", dtype="category", nullable=True, allowed=["1", "2"]),
        # what `contract infer` drafts for a True/False column with blanks: a category of strings
        ColumnRule("raw_flag", dtype="category", nullable=True, allowed=["False", "True"]),
        ColumnRule("y", dtype="category", feature=False, not_constant=False),
    )
    contract = Contract(name="flags", columns=columns, target="y", labels=["a", "b"])
    frame = read_with_contract(path, contract)
    assert frame["flag"].dtype == "boolean" and frame["flag"].isna().sum() == 1
    assert frame["code"].tolist()[:3] == ["1", "2", "1"] and frame["raw_flag"].tolist()[:2] == ["True", "False"]
    report, _ = validate_frame(frame, contract)
    assert report.success, [r.describe() for r in report.failures()]
    strict = replace(contract, columns=(replace(columns[0], nullable=False), *columns[1:]))
    failed = validate_frame(read_with_contract(path, strict), strict)[0].failures()
    assert [(r.rule, r.column) for r in failed] == [("not_null", "flag")]


def test_a_bool_dtype_failure_names_the_values_that_are_not_booleans(tmp_path):
    path = tmp_path / "flags.csv"
    path.write_text("flag,y\n" + "".join(f"{v},{'ab'[i % 2]}\n" for i, v in enumerate(["yes", "no", "maybe"] * 4)))
    columns = (ColumnRule("flag", dtype="bool"), ColumnRule("y", dtype="category", feature=False))
    contract = Contract(name="flags", columns=columns, target="y", labels=["a", "b"])
    failed = validate_frame(read_with_contract(path, contract), contract)[0].failures()
    assert [(r.rule, r.column, r.unexpected_count) for r in failed] == [("dtype", "flag", 4)]
    assert failed[0].examples == ["maybe"] * 4
