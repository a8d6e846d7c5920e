"""Contract model: inference, YAML round trip, errors that name the field, reading messy files."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import yaml

from components.data.contract import (
    ColumnRule,
    Contract,
    ContractError,
    DataReadError,
    ReadOptions,
    _cast,
    contract_from_dict,
    contract_to_dict,
    infer_contract,
    load_contract,
    model_frame,
    normalise,
    read_with_contract,
    save_contract,
)


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 120
    income = rng.normal(50_000, 8_000, n)
    income[:6] = np.nan
    return pd.DataFrame(
        {
            "customer_id": np.arange(1000, 1000 + n),
            "age": rng.integers(20, 70, n),
            "income": income,
            "plan": rng.choice(["basic", "pro"], n),
            "note": [f"free text {i}" for i in range(n)],
            "churn": np.array([0, 1, 1] * (n // 3)),
        }
    )


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


def test_save_load_round_trip_is_exact_and_commented(frame, tmp_path):
    c = infer_contract(frame, "churn", name="churn")
    c = replace(
        c, reading=ReadOptions(label_strip_suffix=".", delimiter=";"), severity={"class_balance": "warn"}
    )
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


def _adult_contract() -> Contract:
    return Contract(
        name="adult",
        columns=(
            ColumnRule("age", dtype="int", min=0, max=120),
            ColumnRule("workclass", dtype="category", nullable=True, allowed=["Private", "State-gov"]),
            ColumnRule("hours", dtype="float", nullable=True),
            ColumnRule("income", dtype="category", feature=False),
        ),
        target="income",
        labels=["<=50K", ">50K"],
        reading=ReadOptions(na_values=["?"], strip_whitespace=True, label_strip_suffix="."),
    )


def test_messy_csv_question_marks_whitespace_and_label_suffix(tmp_path):
    path = tmp_path / "adult.csv"
    path.write_text(
        "age, workclass, hours, income\n"
        "39, State-gov, 40, <=50K\n"
        "50, ?, ?, >50K.\n"
        "38, Private , 35.5, <=50K.\n"
    )
    frame = read_with_contract(path, _adult_contract())
    assert list(frame.columns) == ["age", "workclass", "hours", "income"]
    assert frame["age"].dtype == "int64"
    assert frame["workclass"].tolist()[0] == "State-gov" and pd.isna(frame["workclass"][1])
    assert frame["workclass"][2] == "Private"
    assert pd.isna(frame["hours"][1]) and frame["hours"].dtype == "float64"
    assert frame["income"].tolist() == ["<=50K", ">50K", "<=50K"]


def test_strings_in_numeric_column_are_kept_for_validation(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("age,workclass,hours,income\n39,Private,40,<=50K\nforty,Private,40,>50K\n")
    frame = read_with_contract(path, _adult_contract())
    assert frame["age"].tolist() == ["39", "forty"]  # not silently NaN


def test_parquet_is_read_and_cast(tmp_path, frame):
    c = infer_contract(frame, "churn")
    frame.to_parquet(tmp_path / "d.parquet")
    back = read_with_contract(tmp_path / "d.parquet", c)
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataReadError, match="Parquet"):
        read_with_contract(tmp_path / "broken.parquet", c)


def test_too_many_fields_and_missing_file_are_read_errors(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("age,workclass,hours,income\n39,Private,40,<=50K,extra\n")
    with pytest.raises(DataReadError, match="malformed CSV"):
        read_with_contract(path, _adult_contract())
    with pytest.raises(DataReadError, match="not found"):
        read_with_contract(tmp_path / "missing.csv", _adult_contract())


def test_wrong_delimiter_hint_names_the_likely_one(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("age;workclass;hours;income\n39;Private;40;<=50K\n")
    with pytest.raises(DataReadError, match="looks ';'-separated"):
        read_with_contract(path, _adult_contract())


def _normalise_row_by_row(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """What normalise did before it looked at distinct values first: every step over every row."""
    opts, out = contract.reading, {}
    for col in frame.columns:
        s = frame[col]
        if pd.api.types.is_string_dtype(s):
            if opts.strip_whitespace:
                s = s.str.strip()
                s = s.where(~s.isin(opts.na_values))
            if col == contract.target and opts.label_strip_suffix:
                s = s.str.removesuffix(opts.label_strip_suffix)
        rule = contract.column(col)
        out[col] = _cast(s, rule.dtype) if rule is not None else s
    return pd.DataFrame(out, index=frame.index)


@pytest.mark.parametrize(
    "variant",
    ["clean", "padded", "token", "suffix", "object", "int32", "float-int", "text-numbers", "no-strip"],
)
def test_normalise_matches_row_by_row_cleaning(variant):
    c = _adult_contract()
    frame = pd.DataFrame(
        {
            "age": np.array([39, 50, 38, 41]),
            "workclass": pd.Series(["State-gov", "Private", None, "Private"], dtype="str"),
            "hours": [40.0, np.nan, 35.5, 20.0],
            "income": pd.Series(["<=50K", ">50K", "<=50K", ">50K"], dtype="str"),
        }
    )
    if variant == "padded":
        frame["workclass"] = pd.Series([" State-gov", "Private ", None, "Private"], dtype="str")
    elif variant == "token":
        frame["workclass"] = pd.Series(["State-gov", " ? ", None, "?"], dtype="str")
    elif variant == "suffix":
        frame["income"] = pd.Series(["<=50K.", ">50K", "<=50K", ">50K."], dtype="str")
    elif variant == "object":
        frame["workclass"] = pd.Series(["State-gov ", "?", None, "Private"], dtype=object)
    elif variant == "int32":
        frame["age"] = frame["age"].astype("int32")
    elif variant == "float-int":
        frame["age"] = frame["age"].astype("float64")
    elif variant == "text-numbers":
        frame["age"] = pd.Series(["39", " 50", "x", "41"], dtype="str")
    elif variant == "no-strip":
        c = replace(c, reading=replace(c.reading, strip_whitespace=False))
        frame["workclass"] = pd.Series([" State-gov", "?", None, "Private"], dtype="str")
        frame["income"] = pd.Series(["<=50K.", ">50K", "<=50K", ">50K"], dtype="str")
    expected = _normalise_row_by_row(frame, c)
    got = normalise(frame, c)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert list(got.dtypes) == list(expected.dtypes)


def test_normalise_passes_clean_columns_through_uncopied():
    c = _adult_contract()
    frame = pd.DataFrame(
        {
            "age": np.array([39, 50]),
            "workclass": pd.Series(["State-gov", "Private"], dtype="str"),
            "hours": [40.0, 35.5],
            "income": pd.Series(["<=50K", ">50K"], dtype="str"),
        }
    )
    out = normalise(frame, c)
    pd.testing.assert_frame_equal(out, frame)
    assert np.shares_memory(out["age"].to_numpy(), frame["age"].to_numpy())
    assert np.shares_memory(out["hours"].to_numpy(), frame["hours"].to_numpy())
    out.loc[0, "age"] = 99  # copy-on-write: the input is not touched
    assert frame.loc[0, "age"] == 39


def test_parquet_reads_only_contract_columns_when_extras_are_allowed(tmp_path, frame):
    c = infer_contract(frame, "churn")
    frame.assign(extra=1.0).to_parquet(tmp_path / "d.parquet")
    assert "extra" in read_with_contract(tmp_path / "d.parquet", c)  # reported by the extra_columns rule
    lenient = replace(c, allow_extra_columns=True)
    back = read_with_contract(tmp_path / "d.parquet", lenient)
    assert list(back.columns) == list(frame.columns)


def test_model_frame_turns_text_categories_into_categoricals_that_train_the_same():
    from components.training.features import build_preprocessor

    c = _adult_contract()
    frame = pd.DataFrame(
        {
            "age": [39, 50, 38, 41, 29, 60],
            "workclass": pd.Series(["State-gov", "Private", None, "Private", "Private", "State-gov"], dtype="str"),
            "hours": [40.0, np.nan, 35.5, 20.0, 45.0, 50.0],
            "income": pd.Series(["<=50K", ">50K", "<=50K", ">50K", "<=50K", "<=50K"], dtype="str"),
        }
    )
    out = model_frame(frame, c)
    assert list(out.columns) == ["age", "workclass", "hours", "income"]
    assert isinstance(out["workclass"].dtype, pd.CategoricalDtype)
    assert out["income"].dtype == frame["income"].dtype  # the target keeps its dtype
    assert out["workclass"].astype("str").where(out["workclass"].notna()).equals(frame["workclass"])
    X, X_cat = frame.drop(columns="income"), out.drop(columns="income")
    plain, cat = build_preprocessor(X).fit(X), build_preprocessor(X_cat).fit(X_cat)
    assert plain.transform(X).dtype == np.float64
    np.testing.assert_array_equal(cat.transform(X_cat), plain.transform(X))
    np.testing.assert_array_equal(cat.transform(X), plain.transform(X))  # serving sends plain strings


def test_evaluation_section_round_trips_and_is_drafted_for_low_cardinality_categories(tmp_path):
    """The draft names slices on small categoricals (never the target or an id) and sets no thresholds."""
    from tests.messy import messy_frame

    frame = messy_frame(rows=500, seed=4)
    contract = infer_contract(frame, "Churn", name="churn")
    assert contract.evaluation["thresholds"] == {} and contract.evaluation["behaviour"] == []
    assert contract.evaluation["slices"]["columns"] == ["gender", "Contract", "PaymentMethod"]
    save_contract(contract, tmp_path / "c.yaml")
    assert load_contract(tmp_path / "c.yaml").evaluation == contract.evaluation
    assert "beat the class-prior baseline" in (tmp_path / "c.yaml").read_text()
