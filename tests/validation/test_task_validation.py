"""Validating multiclass and regression data: the target's rules follow the contract's task."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from components.data.contract import Contract
from components.data.contract_inference import infer_contract
from components.data.contract_yaml import save_contract
from components.data.reading import read_with_contract
from components.validation.drift import drift_report
from components.validation.gx_engine import compile_checks
from components.validation.validate import QUARANTINE_COLUMN, basic_contract, validate_frame
from tests.data.task_frames import diabetes_frame, wine_frame


@pytest.fixture(scope="module")
def diabetes() -> Contract:
    return infer_contract(diabetes_frame(), "progression", name="diabetes")


@pytest.fixture(scope="module")
def wine() -> Contract:
    return infer_contract(wine_frame(), "cultivar", name="wine")


def _failed(report) -> list[tuple[str, str | None]]:
    return [(r.rule, r.column) for r in report.failures()]


def test_a_regression_suite_checks_the_target_as_a_number_not_as_labels(diabetes):
    target = [(c.rule, c.expectation) for c in compile_checks(diabetes) if c.column == "progression"]
    assert ("not_null", "expect_column_values_to_not_be_null") in target
    assert ("range", "expect_column_values_to_be_between") in target
    assert not {"labels", "min_classes", "class_balance"} & {rule for rule, _ in target}


def test_clean_regression_data_passes_through_a_csv(diabetes, tmp_path):
    path, contract_path = tmp_path / "diabetes.csv", tmp_path / "diabetes.yaml"
    diabetes_frame(seed=1).to_csv(path, index=False)
    save_contract(diabetes, contract_path)
    frame = read_with_contract(path, diabetes)
    assert frame["progression"].dtype == np.float64
    report, kept = validate_frame(frame, diabetes, reference=diabetes_frame())
    assert report.success, [r.describe() for r in report.failures()]
    assert len(kept) == len(frame) and not report.warnings()


def test_text_in_a_numeric_target_blocks_naming_the_column(diabetes, tmp_path):
    path = tmp_path / "bad.csv"
    bad = diabetes_frame().astype({"progression": object})
    bad.loc[4, "progression"] = "high"
    bad.to_csv(path, index=False)
    frame = read_with_contract(path, diabetes)
    report, _ = validate_frame(frame, diabetes)
    assert not report.success and _failed(report) == [("dtype", "progression")]
    assert report.failures()[0].examples == ["high"]


def test_a_missing_target_blocks_and_an_out_of_range_one_is_quarantined_when_the_contract_says_so(diabetes):
    frame = diabetes_frame()
    frame.loc[3, "progression"] = np.nan
    assert _failed(validate_frame(frame, diabetes)[0]) == [("not_null", "progression")]

    target = dataclasses.replace(diabetes.column("progression"), severity={"range": "quarantine"})
    lenient = dataclasses.replace(diabetes, columns=tuple(target if c.name == "progression" else c
                                                          for c in diabetes.columns))  # fmt: skip
    frame = diabetes_frame()
    frame.loc[[5, 9], "progression"] = [target.max + 100, -50.0]
    report, kept = validate_frame(frame, lenient)
    assert report.success and report.n_quarantined == 2 and len(kept) == len(frame) - 2
    assert [(r.rule, r.column) for r in report.quarantined()] == [("range", "progression")]


def test_multiclass_data_passes_and_needs_three_known_classes(wine):
    frame = wine_frame(seed=1)
    assert frame["region"].isna().any()  # blanks in a nullable category pass
    assert validate_frame(frame, wine, reference=wine_frame())[0].success

    two = frame[frame["cultivar"] != "barbera"]
    assert ("min_classes", "cultivar") in _failed(validate_frame(two, wine)[0])
    unknown = frame.assign(cultivar=frame["cultivar"].replace({"barbera": "nebbiolo"}))
    assert ("labels", "cultivar") in _failed(validate_frame(unknown, wine)[0])


def test_the_target_drifts_as_a_number_for_regression_and_as_a_label_mix_for_multiclass(diabetes, wine):
    reference = diabetes_frame()
    shifted = reference.assign(progression=reference["progression"] * 1.6)
    stats = drift_report(reference, shifted, diabetes)["columns"]["progression"]
    assert stats["kind"] == "numeric" and stats["drifted"] and stats["ks"] > 0.3
    same = drift_report(reference, reference, diabetes)["columns"]["progression"]
    assert same["kind"] == "numeric" and not same["drifted"]

    reference = wine_frame()
    mostly_barolo = pd.concat([reference, reference[reference["cultivar"] == "barolo"].iloc[:40]] * 3)
    stats = drift_report(reference, mostly_barolo, wine)["columns"]["cultivar"]
    assert stats["kind"] == "categorical" and stats["psi"] > 0


def test_the_basic_contract_follows_the_task():
    frame = diabetes_frame().drop(columns=["sex", "region"])
    regression = basic_contract(frame, "progression", task="regression")
    assert regression.task == "regression" and regression.labels == []
    assert validate_frame(frame, regression)[0].success
    text = frame.astype({"progression": object})
    text.loc[0, "progression"] = "n/a"
    assert _failed(validate_frame(text, basic_contract(text, "progression", task="regression"))[0]) == [
        ("dtype", "progression")
    ]

    wine = wine_frame().drop(columns=["region"])
    assert validate_frame(wine, basic_contract(wine, "cultivar", task="multiclass"))[0].success
    two = wine[wine["cultivar"] != "barbera"]
    assert _failed(validate_frame(two, basic_contract(two, "cultivar", task="multiclass"))[0]) == [
        ("min_classes", "cultivar")
    ]
    # too many labels for binary is the run's target check to refuse (naming task), not a data rule
    assert validate_frame(wine, basic_contract(wine, "cultivar", task="binary"))[0].success
    assert basic_contract(wine, "cultivar").task == "multiclass"  # no task given: three labels say it


def test_quarantined_rows_of_a_multiclass_batch_name_their_rule(wine):
    contract = dataclasses.replace(wine, severity={"labels": "quarantine"}, max_quarantine_fraction=0.1)
    frame = wine_frame()
    frame.loc[[0, 1], "cultivar"] = "nebbiolo"
    report, kept = validate_frame(frame, contract)
    assert report.success and "nebbiolo" not in set(kept["cultivar"])
    assert report.n_quarantined == 2 and QUARANTINE_COLUMN not in kept.columns
