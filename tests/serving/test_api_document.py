"""What /docs.json says, built without a server: the request body from the schema, the errors, the page."""

import json

import jsonschema
import pytest

from components.serving.api_document import (
    ERROR_SCHEMA,
    MAX_ABS_NUMBER,
    feature_schema,
    model_page,
    openapi_document,
    request_body_model,
    request_json_schema,
    synthetic_record,
)
from components.serving.gatekeeper import error_response
from components.serving.request_schema import RequestError, RequestValidator

SCHEMA = {
    "features": [
        {"name": "age", "dtype": "int", "nullable": False, "min": 0, "max": 120, "allowed": None},
        {"name": "income", "dtype": "float", "nullable": True, "min": None, "max": None, "allowed": None},
        {"name": "colour", "dtype": "string", "nullable": True, "min": None, "max": None, "allowed": ["red", "blue"]},
        {"name": "member", "dtype": "bool", "nullable": False, "min": None, "max": None, "allowed": None},
    ],
    "ignored": ["customer_id", "churned"],
}
EXAMPLE = {"age": 41, "income": 2.5, "colour": "blue", "member": True}
CONFIG = {
    "service_name": "churn-service",
    "task": "binary",
    "classes": ["no", "yes"],
    "max_batch": 50,
    "schema": SCHEMA,
    "metadata": {
        "registered_model": "churn",
        "model_version": "7",
        "dataset_md5": "abc123",
        "git_commit": "deadbeef",
        "decision": "promote",
        "candidate": "logreg",
    },  # fmt: skip
    "model_card": {"test_metrics": {"roc_auc": 0.91234, "f1": 0.8}, "decision_reason": "beats the champion"},
}


def _body_schema(example=EXAMPLE):
    return request_json_schema(SCHEMA, max_batch=50, example=example)


def _openapi_3_0_as_json_schema(schema):
    """OpenAPI 3.0's ``nullable`` as JSON Schema, so jsonschema can judge a record."""
    out = dict(schema)
    if out.pop("nullable", False):
        out["type"] = [out["type"], "null"]
    return out


def test_features_carry_type_bounds_allowed_values_and_nullability():
    age, income, colour, member = (feature_schema(f) for f in SCHEMA["features"])
    assert age == {"type": "integer", "minimum": 0.0, "maximum": 120.0}
    # no bounds in the contract: the validator's magnitude limit is the bound
    assert income == {"type": "number", "minimum": -MAX_ABS_NUMBER, "maximum": MAX_ABS_NUMBER, "nullable": True}
    assert colour == {"type": "string", "enum": ["red", "blue", None], "nullable": True}
    assert member == {"type": "boolean"}


def test_the_body_is_a_bounded_list_of_records_with_every_feature_and_the_example():
    body = _body_schema()
    assert body["required"] == ["records"]
    records = body["properties"]["records"]
    assert (records["minItems"], records["maxItems"]) == (1, 50)
    record = records["items"]
    assert record["required"] == ["age", "income", "colour", "member"]
    assert record["additionalProperties"] is False
    # the contract's other columns are declared (any value) so the document admits them
    assert record["properties"]["customer_id"] == {
        "description": pytest.approx(record["properties"]["churned"]["description"])
    }
    assert body["example"] == {"records": [EXAMPLE]}


def test_without_an_example_a_made_up_record_fits_both_the_document_and_the_validator():
    record = _body_schema(example=None)["example"]["records"][0]
    assert record == synthetic_record(SCHEMA)
    RequestValidator(SCHEMA, max_batch=1)([record])  # does not raise
    for spec in SCHEMA["features"]:
        jsonschema.validate(record[spec["name"]], _openapi_3_0_as_json_schema(feature_schema(spec)))


def test_every_error_the_service_writes_fits_the_declared_error_schema():
    for status, field in ((400, "age"), (401, "x-api-key"), (405, None), (413, "records")):
        body = json.loads(error_response(status, "what is wrong", field).body)
        assert body == {"error": "what is wrong", "field": field, "status": status}
        jsonschema.validate(body, {**ERROR_SCHEMA, "properties": {**ERROR_SCHEMA["properties"],
                                                                   "field": {"type": ["string", "null"]}}})  # fmt: skip


def _bentoml_like_spec():
    """The parts of BentoML's generated document that openapi_document changes."""
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/InvalidArgument"}}}}
    body = {"content": {"application/json": {"schema": {**_body_schema(), "root_input": True}}}}
    api = {"responses": {"200": {"description": "ok"}, "400": error, "404": error, "500": error}, "requestBody": body}
    return {
        "openapi": "3.0.2",
        "info": {"title": "churn-service", "version": "None", "description": "# churn-service:dev ..."},
        "paths": {
            "/predict": {"post": api},
            "/metadata": {"get": {"responses": {"200": {}}}},
            "/healthz": {"get": {"responses": {"200": {}}}},
        },  # fmt: skip
        "components": {"schemas": {}},
    }


@pytest.mark.parametrize("key_required", [False, True])
def test_the_document_names_the_model_and_declares_one_error_format(key_required):
    spec = _bentoml_like_spec()
    doc = openapi_document(spec, config=CONFIG, bento_tag="churn-service:abc", api_paths=frozenset({"/predict"}),
                           open_paths=frozenset({"/healthz"}), key_required=key_required)  # fmt: skip
    assert spec["info"]["title"] == "churn-service"  # the input is not changed
    assert doc["info"]["title"] == "churn · version 7" and doc["info"]["version"] == "7"
    predict = doc["paths"]["/predict"]["post"]
    statuses = {"200", "400", "411", "413", "415", "500"} | ({"401"} if key_required else set())
    assert set(predict["responses"]) == statuses
    for status in statuses - {"200", "500"}:
        assert predict["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
    assert predict["requestBody"]["required"] is True
    assert "root_input" not in predict["requestBody"]["content"]["application/json"]["schema"]
    assert doc["components"]["schemas"]["Error"] == ERROR_SCHEMA
    if key_required:
        assert doc["components"]["securitySchemes"]["ApiKey"]["name"] == "x-api-key"
        assert doc["paths"]["/healthz"]["get"]["security"] == []
        assert "401" in doc["paths"]["/metadata"]["get"]["responses"]
    else:
        assert "security" not in doc and "401" not in doc["paths"]["/metadata"]["get"]["responses"]


def test_the_page_tells_version_task_metrics_decision_and_lineage():
    page = model_page(CONFIG, "churn-service:abc")
    for fact in ("`churn` version `7`", "binary, classes `no`, `yes`", "roc_auc 0.9123", "f1 0.8",
                 "promote: beats the champion", "`abc123`", "`deadbeef`", "`churn-service:abc`", "1 to 50 records",
                 "`customer_id`"):  # fmt: skip
        assert fact in page, fact
    assert "BentoML" not in page and "bento |" not in model_page(CONFIG, None)  # no tag while building


def test_the_input_model_hands_over_any_body_and_says_why_it_is_not_json():
    model = request_body_model(_body_schema())
    assert model.model_validate_json(b'{"records": [1]}').value == {"records": [1]}
    assert model.model_validate_json(b"[1, 2]").value == [1, 2]
    broken = model.model_validate_json(b'{"records": [')
    assert broken.value is None and broken.problem
    assert model.model_json_schema()["properties"]["records"]["maxItems"] == 50
    model.model_json_schema()["properties"].clear()  # BentoML edits what it gets: each call is a fresh copy
    assert "records" in model.model_json_schema()["properties"]


def test_nan_tokens_parse_and_are_refused_by_the_validator_naming_the_field():
    body = request_body_model(_body_schema()).model_validate_json(
        b'{"records": [{"age": 4, "income": NaN, "colour": "red", "member": false}]}'
    )
    with pytest.raises(RequestError) as err:
        RequestValidator(SCHEMA, max_batch=1)(body.value["records"])
    assert err.value.field == "income"
