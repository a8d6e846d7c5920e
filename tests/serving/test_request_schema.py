import math

import pandas as pd
import pytest

from components.serving.request_schema import (
    RequestError,
    records_from_body,
    schema_from_contract,
    schema_from_frame,
    validate_records,
)

SCHEMA = {
    "features": [
        {"name": "age", "dtype": "int", "nullable": False, "min": 0, "max": 120, "allowed": None},
        {"name": "income", "dtype": "float", "nullable": True, "min": None, "max": None, "allowed": None},
        {
            "name": "colour",
            "dtype": "string",
            "nullable": False,
            "min": None,
            "max": None,
            "allowed": ["red", "blue"],
        },
    ]
}
GOOD = {"age": 30, "income": 1.5, "colour": "red"}


def test_good_records_become_a_typed_frame_in_schema_order():
    frame = validate_records([{"colour": "blue", "income": None, "age": 4}, GOOD], SCHEMA, max_batch=10)
    assert list(frame.columns) == ["age", "income", "colour"]
    assert frame["age"].dtype == "int64" and math.isnan(frame["income"][0])


@pytest.mark.parametrize(
    ("records", "field", "message"),
    [
        ([], "records", "empty"),
        ({"age": 1}, "records", "list"),
        ([GOOD] * 11, "records", "exceed"),
        ([{"income": 1.0, "colour": "red"}], "age", "missing field 'age'"),
        ([{**GOOD, "extra": 1}], "extra", "unknown field 'extra'"),
        ([{**GOOD, "age": "30"}], "age", "expected a number"),
        ([{**GOOD, "age": True}], "age", "expected a number"),
        ([{**GOOD, "income": float("nan")}], "income", "NaN"),
        ([{**GOOD, "income": float("inf")}], "income", "infinity"),
        ([{**GOOD, "age": 130}], "age", "outside"),
        ([{**GOOD, "age": 3.5}], "age", "integer"),
        ([{**GOOD, "age": None}], "age", "null"),
        ([{**GOOD, "colour": "green"}], "colour", r"allowed values \('red', 'blue'\)"),
        ([{**GOOD, "colour": 3}], "colour", "string"),
        (["not a dict"], "records", "object"),
    ],
)
def test_bad_requests_name_the_field(records, field, message):
    with pytest.raises(RequestError, match=message) as err:
        validate_records(records, SCHEMA, max_batch=10)
    assert err.value.field == field


def test_schema_from_frame_types_and_nullability():
    frame = pd.DataFrame({"a": [1.0, None], "b": ["x", "y"]})
    schema = schema_from_frame(frame, ["a", "b"])
    assert [(f["name"], f["dtype"], f["nullable"]) for f in schema["features"]] == [
        ("a", "float", True),
        ("b", "string", False),
    ]


def test_contract_columns_that_are_not_features_are_accepted_and_dropped():
    schema = {**SCHEMA, "ignored": ["customer_id", "churned"]}
    frame = validate_records([{**GOOD, "customer_id": "c-17", "churned": None}], schema, max_batch=1)
    assert list(frame.columns) == ["age", "income", "colour"]
    with pytest.raises(RequestError, match="unknown field 'colour_code'") as err:
        validate_records([{**GOOD, "customer_id": 1, "colour_code": 3}], schema, max_batch=1)
    assert err.value.field == "colour_code"
    with pytest.raises(RequestError, match="missing field 'age'"):  # an ignored column never stands in for a feature
        validate_records([{"customer_id": 1, "income": 1.0, "colour": "red"}], schema, max_batch=1)


def test_schema_from_contract_ignores_the_contracts_other_columns():
    from types import SimpleNamespace

    from components.data.contract import ColumnRule

    rules = [ColumnRule(name="id", dtype="int", feature=False), ColumnRule(name="x"), ColumnRule(name="y", dtype="int")]
    schema = schema_from_contract(SimpleNamespace(columns=rules), ["x"])
    assert [f["name"] for f in schema["features"]] == ["x"] and schema["ignored"] == ["id", "y"]


def test_schema_from_frame_ignores_the_frames_other_columns():
    frame = pd.DataFrame({"a": [1.0], "b": ["x"], "target": [0]})
    assert schema_from_frame(frame, ["a", "b"])["ignored"] == ["target"]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ([GOOD], None, "expected a JSON object"),
        ("records", None, "got a string"),
        ({"rows": [GOOD]}, "records", "records: missing"),
        ({}, "records", "records: missing"),
    ],
)
def test_a_body_that_is_not_an_object_with_records_is_refused(body, field, message):
    with pytest.raises(RequestError, match=message) as err:
        records_from_body(body)
    assert err.value.field == field


def test_keys_beside_records_are_ignored():
    assert records_from_body({"records": [GOOD], "request_id": "r-1"}) == [GOOD]
