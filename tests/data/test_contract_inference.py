"""Drafting a contract from a reference frame: dtypes, bounds, nulls, labels, keys, evaluation slices."""

from __future__ import annotations

import pytest

from components.data.contract import load_contract
from components.data.contract_inference import infer_contract
from components.data.contract_yaml import save_contract
from tests.messy import messy_frame


def test_infer_types_bounds_nulls_labels(frame):
    c = infer_contract(frame, "churn", name="churn")
    cols = {col.name: col for col in c.columns}
    assert [cols[n].dtype for n in frame.columns] == ["int", "int", "float", "category", "string", "int"]
    assert cols["age"].min <= frame["age"].min() and cols["age"].max >= frame["age"].max()
    assert cols["age"].min >= 0 and float(cols["age"].min).is_integer()
    assert cols["income"].nullable and cols["income"].max_null_fraction == pytest.approx(0.1)
    assert not cols["age"].nullable and cols["age"].max_null_fraction is None
    assert cols["plan"].allowed == ["basic", "pro"]
    assert not cols["note"].feature and not cols["customer_id"].feature
    assert c.keys == ["customer_id"]
    assert c.labels == [0, 1]
    lo, hi = c.class_balance[1]
    assert lo < 2 / 3 < hi
    assert c.min_rows == 12 and c.max_rows is None
    assert c.feature_columns() == ["age", "income", "plan"]


def test_evaluation_section_round_trips_and_is_drafted_for_low_cardinality_categories(tmp_path):
    """The draft names slices on small categoricals (never the target or an id) and sets no thresholds."""
    frame = messy_frame(rows=500, seed=4)
    contract = infer_contract(frame, "Churn", name="churn")
    assert contract.evaluation["thresholds"] == {} and contract.evaluation["behaviour"] == []
    assert contract.evaluation["slices"]["columns"] == ["gender", "Contract", "PaymentMethod"]
    save_contract(contract, tmp_path / "c.yaml")
    assert load_contract(tmp_path / "c.yaml").evaluation == contract.evaluation
    assert "beat the class-prior baseline" in (tmp_path / "c.yaml").read_text()


def test_rows_without_a_label_are_drafted_into_quarantine_not_a_rejection(frame):
    labelled = infer_contract(frame, "churn", name="churn")
    assert labelled.column("churn").severity == {} and labelled.max_quarantine_fraction == 0.05

    blanks = frame.astype({"churn": "float64"})
    blanks.loc[blanks.index[::8], "churn"] = None  # outcomes not known yet: 1 row in 8
    share = blanks["churn"].isna().mean()
    draft = infer_contract(blanks, "churn", name="churn")
    assert draft.column("churn").severity == {"not_null": "quarantine"}
    assert draft.max_quarantine_fraction == pytest.approx(2 * share, abs=1e-4)
    assert draft.labels == [0, 1]  # the labels of the labelled rows, blanks not among them
    assert draft.column("churn").severity_of("not_null") == "quarantine"
    amounts = blanks.assign(churn=blanks["income"])  # a numeric target with blanks: regression, same rule
    regression = infer_contract(amounts, "churn", name="spend", task="regression")
    assert regression.column("churn").severity == {"not_null": "quarantine"} and regression.labels == []
