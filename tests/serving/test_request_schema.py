import math

import pandas as pd
import pytest

from components.serving.request_schema import RequestError, schema_from_frame, validate_records

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
        ([{**GOOD, "colour": "green"}], "colour", "allowed"),
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
