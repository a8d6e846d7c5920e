"""Contract model: YAML round trip, errors that name the field."""

from __future__ import annotations

from dataclasses import replace

import pytest
import yaml

from components.data.contract import (
    ContractError,
    ReadOptions,
    contract_from_dict,
    load_contract,
)
from components.data.contract_inference import infer_contract
from components.data.contract_yaml import contract_to_dict, save_contract


def test_save_load_round_trip_is_exact_and_commented(frame, tmp_path):
    c = infer_contract(frame, "churn", name="churn")
    c = replace(c, reading=ReadOptions(label_strip_suffix=".", delimiter=";"), severity={"class_balance": "warn"})
    path = tmp_path / "churn.yaml"
    save_contract(c, path)
    text = path.read_text()
    assert text.startswith("# Data contract 'churn'")
    assert text.index("name:") < text.index("columns:")
    assert load_contract(path) == c
    assert contract_from_dict(contract_to_dict(c)) == c
    assert yaml.safe_load(text)["columns"]["plan"]["allowed"] == ["basic", "pro"]


def test_breast_cancer_contract_matches_dataset_shape():
    c = load_contract("contracts/breast_cancer.yaml")
    assert c.target == "target" and c.labels == [0, 1]
    assert len(c.feature_columns()) == 30 and "mean radius" in c.feature_columns()
    assert c.min_rows <= 120


def _base() -> dict:
    return {
        "name": "t",
        "target": "y",
        "labels": [0, 1],
        "columns": {"x": {"dtype": "float", "min": 0, "max": 1}, "y": {"dtype": "int"}},
    }


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"colour": 1}, "colour"),
        ({"target": "nope"}, "target"),
        ({"labels": []}, "labels"),
        ({"columns": {"x": {"dtype": "decimal"}, "y": {}}}, "columns.x.dtype"),
        ({"columns": {"x": {"mni": 0}, "y": {}}}, "columns.x.mni"),
        ({"columns": {"x": {"min": 2, "max": 1}, "y": {}}}, "columns.x.min"),
        ({"columns": {"x": {"min": "low"}, "y": {}}}, "columns.x.min"),
        ({"columns": {"x": {"severity": {"dtype": "quarantine"}}, "y": {}}}, "columns.x.severity.dtype"),
        ({"columns": {"x": {"on_unseen": "ignore"}, "y": {}}}, "columns.x.on_unseen"),
        ({"columns": {"x": {"regex": "("}, "y": {}}}, "columns.x.regex"),
        ({"keys": ["z"]}, "keys"),
        ({"class_balance": {0: {"min": 0.9, "max": 0.1}}}, "class_balance.0"),
        ({"severity": {"row_count": "quarantine"}}, "table.severity.row_count"),
        ({"reading": {"delimeter": ";"}}, "reading.delimeter"),
        ({"drift": {"severity": "quarantine"}}, "drift.severity"),
        ({"evaluation": {"tresholds": {}}}, "evaluation.tresholds"),
        ({"evaluation": {"thresholds": {"roc_auc": "high"}}}, "evaluation.thresholds"),
        ({"evaluation": {"slices": {"columns": ["nope"]}}}, "evaluation.slices.columns"),
        ({"evaluation": {"behaviour": "none"}}, "evaluation.behaviour"),
    ],
)
def test_invalid_contract_names_the_field(patch, field):
    with pytest.raises(ContractError, match=field.replace(".", r"\.")):
        contract_from_dict({**_base(), **patch})


def test_load_contract_reports_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ContractError, match="not found"):
        load_contract(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("name: [unclosed")
    with pytest.raises(ContractError, match="not valid YAML"):
        load_contract(tmp_path / "bad.yaml")
