"""Reading messy files with a contract: missing-value tokens, whitespace, label suffixes, dtypes, read errors."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from components.data.contract import ColumnRule, Contract, DataReadError, ReadOptions
from components.data.contract_inference import infer_contract
from components.data.reading import _cast, model_frame, normalise, read_with_contract
from components.training.features import build_preprocessor


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
        "age, workclass, hours, income\n39, State-gov, 40, <=50K\n50, ?, ?, >50K.\n38, Private , 35.5, <=50K.\n"
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
