"""What the served OpenAPI document (``/docs.json``) says, beyond what BentoML generates by itself.

Shipped inside each bento beside ``service.py`` as a top-level module; it imports nothing from
its neighbours (and BentoML only inside :func:`request_body_model`), so the unit tests build a
document without a server. Three things BentoML cannot know:

- the request body, from the bento's request schema (``request_schema``'s plain-data schema):
  every feature with its type, bounds, allowed values and nullability, the batch limits, and an
  example record (a held-out row, chosen when the bento was built);
- one error format for every 4xx answer (``{"error", "field", "status"}``, written by
  ``gatekeeper.error_response``), declared on each prediction operation;
- a page about the model (name, exact version, task, test metrics, gate decision, lineage) as the
  document's title and description, instead of BentoML's boilerplate README.

The document is checked against the served answers with Schemathesis (``st run .../docs.json
--checks all``): what it says must be exactly what the service accepts and answers.
"""

from __future__ import annotations

import copy
from typing import Any

# request_schema refuses larger magnitudes (they overflow float32 models); the document says so,
# or a generator that trusts it would send numbers the service refuses.
MAX_ABS_NUMBER = 1e15
_JSON_TYPES = {"float": "number", "int": "integer", "string": "string", "bool": "boolean"}

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "description": "Every 4xx answer of the prediction routes has this shape.",
    "required": ["error", "field", "status"],
    "properties": {
        "error": {"type": "string", "description": "what is wrong, naming the record and field"},
        "field": {
            "type": "string",
            "nullable": True,
            "description": "the offending field, feature or header; null when the body as a whole is wrong",
        },
        "status": {"type": "integer", "description": "the HTTP status, repeated"},
    },
}
# Which 4xx the prediction routes answer, and when (401 only when an API key is configured).
ERRORS = {
    400: 'The body is not JSON, not {"records": [...]}, or a record does not fit the contract.',
    401: "Missing or wrong x-api-key header.",
    411: "No Content-Length header (chunked bodies are not read).",
    413: "The body exceeds the size limit.",
    415: "The body is not application/json.",
}


def feature_schema(spec: dict[str, Any]) -> dict[str, Any]:
    """One feature of the request schema as an OpenAPI 3.0 schema: type, bounds, allowed values, null."""
    dtype = spec["dtype"]
    out: dict[str, Any] = {"type": _JSON_TYPES[dtype]}
    if dtype in ("float", "int"):
        low, high = spec.get("min"), spec.get("max")
        out["minimum"] = -MAX_ABS_NUMBER if low is None else max(float(low), -MAX_ABS_NUMBER)
        out["maximum"] = MAX_ABS_NUMBER if high is None else min(float(high), MAX_ABS_NUMBER)
    if spec.get("allowed") is not None:
        out["enum"] = list(spec["allowed"])
    if spec.get("nullable"):
        out["nullable"] = True
        if "enum" in out:
            out["enum"].append(None)  # OpenAPI 3.0: an enum restricts null too unless it lists it
    return out


def synthetic_record(schema: dict[str, Any]) -> dict[str, Any]:
    """A record the schema accepts, for bentos built without a held-out example row."""
    record: dict[str, Any] = {}
    for spec in schema["features"]:
        dtype, low, high = spec["dtype"], spec.get("min"), spec.get("max")
        if spec.get("allowed"):
            record[spec["name"]] = spec["allowed"][0]
        elif dtype in ("float", "int"):
            value = (low + high) / 2 if low is not None and high is not None else low if low is not None else high
            value = 0.0 if value is None else value
            record[spec["name"]] = round(value) if dtype == "int" else float(value)
        else:
            record[spec["name"]] = False if dtype == "bool" else ""
    return record


def request_json_schema(schema: dict[str, Any], *, max_batch: int, example: dict[str, Any] | None) -> dict[str, Any]:
    """The body of ``/predict`` and ``/batch_predict``: ``{"records": [record, ...]}``.

    A record must hold every feature and may hold the contract's other columns (ids, the target),
    which are accepted and ignored; any other key is refused. Keys beside ``records`` are ignored.
    """
    ignored = list(schema.get("ignored") or ())
    properties = {spec["name"]: feature_schema(spec) for spec in schema["features"]}
    for name in ignored:
        properties.setdefault(name, {"description": "a contract column that is not a feature: accepted, ignored"})
    if example is None:
        example = synthetic_record(schema)
    else:  # in schema order (bento_config.json is written with sorted keys)
        example = {spec["name"]: example[spec["name"]] for spec in schema["features"]}
    record = {
        "title": "Record",
        "type": "object",
        "description": "One row: every feature, by name"
        + (f"; {', '.join(ignored)} may be sent too and are ignored" if ignored else ""),
        "required": [spec["name"] for spec in schema["features"]],
        "properties": properties,
        "additionalProperties": False,
    }
    return {
        "title": "PredictRequest",
        "type": "object",
        "required": ["records"],
        "properties": {
            "records": {"type": "array", "minItems": 1, "maxItems": max_batch, "items": record},
        },
        "example": {"records": [example]},
    }


def request_body_model(json_schema: dict[str, Any]) -> type:
    """The APIs' BentoML ``input_spec``: the whole JSON body, parsed but never refused, so every
    400 (not JSON, wrong shape, a bad field) is the service's own, in one format; its JSON Schema
    (what BentoML puts in the document) is ``json_schema``."""
    import bentoml
    from pydantic_core import from_json

    class PredictRequest(bentoml.IODescriptor):
        value: Any = None  # the parsed body
        problem: str | None = None  # why the body is not JSON

        @classmethod
        def model_validate_json(cls, json_data: Any, **_: Any) -> PredictRequest:
            try:
                return cls.model_construct(value=from_json(json_data))  # NaN and Infinity parse; checked later
            except ValueError as err:
                return cls.model_construct(problem=str(err)[:200])

        @classmethod
        def model_json_schema(cls, *_: Any, **__: Any) -> dict[str, Any]:
            return copy.deepcopy(json_schema)  # BentoML edits the schema it is given

    # BentoML's flag for "pass the input model itself as the one argument" (its own root inputs set it too)
    PredictRequest.__root_input__ = True
    return PredictRequest


def _table(rows: list[tuple[str, str]]) -> str:
    return "\n".join(["| | |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in rows)])


def model_page(config: dict[str, Any], bento_tag: str | None) -> str:
    """The document's description (markdown): which model this is, how good, why it serves, where from."""
    meta, card = config.get("metadata") or {}, config.get("model_card") or {}
    name = meta.get("registered_model") or config.get("service_name", "model")
    task, classes = config.get("task", "binary"), config.get("classes") or []
    metrics = card.get("test_metrics") or {}
    decision = meta.get("decision", "not recorded")
    if card.get("decision_reason"):
        decision = f"{decision}: {card['decision_reason']}"
    rows = [
        ("registered model", f"`{name}` version `{meta.get('model_version', '?')}` (MLflow)"),
        ("task", f"{task}" + (f", classes {', '.join(f'`{c}`' for c in classes)}" if classes else "")),
        ("test metrics", ", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items())) or "not recorded"),
        ("gate decision", decision.replace("|", "/").replace("\n", " ")),
        ("candidate", meta.get("candidate", "not recorded")),
        ("dataset md5", f"`{meta.get('dataset_md5', 'not recorded')}`"),
        ("git commit", f"`{meta.get('git_commit', 'not recorded')}`"),
    ]
    if bento_tag:  # None while the bento is being built (its README) or served from source
        rows.append(("bento", f"`{bento_tag}`"))
    ignored = config.get("schema", {}).get("ignored") or []
    usage = [
        f'POST `{{"records": [...]}}` to `/predict` (or `/batch_predict`), 1 to {config.get("max_batch", 1000)} '
        "records, each holding every feature (see the schema below; the example is a held-out row).",
        "Columns of the contract that are not features are accepted and ignored"
        + (f" ({', '.join(f'`{c}`' for c in ignored)})." if ignored else "."),
        'Every 4xx answer is `{"error": ..., "field": ..., "status": ...}`; `field` names what to fix.',
    ]
    return "\n\n".join([_table(rows), *usage])


def openapi_document(
    spec: dict[str, Any],
    *,
    config: dict[str, Any],
    bento_tag: str | None,
    api_paths: frozenset[str],
    open_paths: frozenset[str],
    key_required: bool,
) -> dict[str, Any]:
    """BentoML's generated document (``spec``) with the model's title and page, our error format on
    every prediction route's 4xx, and the API key declared where it is asked for."""
    doc = copy.deepcopy(spec)
    meta = config.get("metadata") or {}
    name = meta.get("registered_model") or config.get("service_name", "model")
    version = str(meta.get("model_version", "unknown"))
    doc["info"] = {"title": f"{name} · version {version}", "version": version,
                   "description": model_page(config, bento_tag)}  # fmt: skip
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = copy.deepcopy(ERROR_SCHEMA)
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if key_required:
        doc["components"]["securitySchemes"] = {"ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}}
        doc["security"] = [{"ApiKey": []}]
    for path, item in doc.get("paths", {}).items():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            if key_required and path in open_paths:
                operation["security"] = []  # the health probes answer without the key
            elif key_required:
                responses["401"] = {"description": ERRORS[401], **error}
            if path in api_paths:
                for status in (400, 404):  # BentoML's own error model, and a status these routes never answer
                    responses.pop(status, None)
                    responses.pop(str(status), None)
                responses.update({str(s): {"description": ERRORS[s], **error} for s in (400, 411, 413, 415)})
                body = operation.setdefault("requestBody", {})
                body["required"] = True  # an empty POST is refused (400), so the document must not offer it
                for media in body.get("content", {}).values():
                    media.get("schema", {}).pop("root_input", None)  # BentoML's marker, not OpenAPI
    return doc
