"""The BentoML service: a thin class over the registered MLflow model.

This file is copied into each bento as ``service.py`` beside ``bento_config.json``
(model tag, lineage labels, request schema) and every other module of
``components/serving``, which it imports flat (top-level modules inside the bento):
``request_schema`` (request validation), ``micro_batching`` (``MicroBatcher``),
``answers`` (the per-task answer: JSON writer, OpenAPI models), ``gatekeeper`` (the ASGI
middleware: API key, body limits, request metrics, the one error format), ``api_document`` (what
``/docs.json`` says: the request body from the contract, the errors, the model's page) and
``traffic_recorder`` (sampled requests and answers written for ``mlops monitor --served``). The
model is declared at class level so the bento records exactly one model version.

The answer follows the model's task (``bento_config.json`` ``task`` and ``classes``): a label
with class probabilities for classifiers, a value for regression (see ``answers``).

Hot path: requests are validated in the event loop (a ``RequestValidator`` compiled
once), then concurrent requests are coalesced into one model call (``MicroBatcher``),
because a model call costs about as much for 1 row as for 100. The model is the
unwrapped python model behind the MLflow pyfunc (``predict_arrays``: answers and scores, the
same code without pyfunc's per-call schema enforcement and without building result frames);
infra validation compares the served answers with the real pyfunc.

Environment (infrastructure only): ``MLOPS_API_KEY`` (required ``x-api-key`` header
on every route except the health probes), ``MLOPS_SERVE_WORKERS`` (processes),
``MLOPS_MONITOR_SAMPLE`` (share of requests recorded, 0 = off), ``MLOPS_MONITOR_DIR`` and
``MLOPS_MONITOR_MAX_MB`` (where, and how much): `mlops serve` sets them from params.yaml.
"""

from __future__ import annotations

import collections
import functools
import gc
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import bentoml
import numpy as np
import pandas as pd
from answers import (
    BINARY,
    DEFAULT_VALUE_BUCKETS,
    REGRESSION,
    AnswerWriter,
    arrays_from_frame,
    check_task,
    low_confidence_count,
    observe_values,
    response_models,
)
from api_document import model_page, openapi_document, request_body_model, request_json_schema
from bento_runtime import bento_tag, prediction_series
from fastapi import FastAPI
from gatekeeper import Gatekeeper, error_response, labelled
from micro_batching import MicroBatcher
from request_schema import RequestError, RequestValidator, frame_from_columns, records_from_body
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from traffic_recorder import recorder_from_env

log = logging.getLogger("mlops.service")

CONFIG = json.loads((Path(__file__).parent / "bento_config.json").read_text())
MAX_BATCH = int(CONFIG.get("max_batch", 1000))
LOW_CONFIDENCE = float(CONFIG.get("low_confidence_threshold", 0.6))
WORKERS = int(os.environ.get("MLOPS_SERVE_WORKERS", CONFIG.get("workers", 1)))
TASK = CONFIG.get("task", BINARY)  # bentos built before tasks existed are binary
CLASSES = check_task(TASK, CONFIG.get("classes"))
VALUE_BUCKETS = tuple(sorted(set(CONFIG.get("value_buckets") or DEFAULT_VALUE_BUCKETS)))
API_PATHS = frozenset({"/predict", "/batch_predict"})
OPEN_PATHS = frozenset({"/health", "/healthz", "/livez", "/readyz"})
# Generous: the key plus up to 40 bytes per number, 300 per string, for MAX_BATCH records.
MAX_BODY_BYTES = 64 * 1024 + MAX_BATCH * sum(
    len(f["name"].encode()) + (40 if f["dtype"] in ("float", "int") else 300) for f in CONFIG["schema"]["features"]
)


# The response body as OpenAPI describes it: the task's fields (the APIs write the JSON themselves).
Prediction, Predictions = response_models(TASK, CLASSES)
ANSWER = {
    BINARY: "a label, the positive class's probability and every class's probability",
    "multiclass": "a label, its probability and every class's probability",
    REGRESSION: "a value",
}[TASK]
# The request body as OpenAPI describes it (the contract's features, the batch limits, a held-out
# example); BentoML passes it to the APIs unrefused, so every 400 is ours (see api_document).
PredictRequest = request_body_model(request_json_schema(CONFIG["schema"], max_batch=MAX_BATCH,
                                                        example=CONFIG.get("example")))  # fmt: skip


def metrics() -> SimpleNamespace:
    """This service's per-prediction series (``bento_runtime.prediction_series``, by its task)."""
    return prediction_series(TASK, LOW_CONFIDENCE, VALUE_BUCKETS)


def fast_predictor(pyfunc: Any, task: str = BINARY, classes: list[Any] | None = None) -> Callable:
    """``frame -> (answers, scores)`` using the python model behind the pyfunc if we can.

    Refuses a model whose own task or classes differ from the bento's config: the answers
    would be labelled wrongly.
    """
    classes = list(classes or [])
    try:
        inner = pyfunc.unwrap_python_model()._model
    except Exception:  # not one of our models-from-code pyfuncs: go through pyfunc
        inner = None
    if inner is not None:
        own_task, own_classes = getattr(inner, "task", BINARY), getattr(inner, "classes", None)
        if own_task != task:
            raise ValueError(f"bento_config.json task: {task!r}, but the model is a {own_task!r} model")
        if own_classes is not None and [str(c) for c in own_classes] != [str(c) for c in classes]:
            raise ValueError(f"bento_config.json classes: {classes!r}, but the model's are {list(own_classes)!r}")
    if hasattr(inner, "predict_arrays"):
        log.info("serving with %s", inner.predict_arrays.__qualname__)
        return inner.predict_arrays
    predict_frame = getattr(inner, "predict_frame", pyfunc.predict)
    log.info("serving with %s", getattr(predict_frame, "__qualname__", predict_frame))
    to_arrays = arrays_from_frame(task, classes)

    def predict(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return to_arrays(predict_frame(frame))

    return predict


def _doc(text: str) -> Callable:
    """Set a function's docstring (an API's description in the OpenAPI spec) from a computed text."""

    def document(func: Callable) -> Callable:
        func.__doc__ = text
        return func

    return document


# FastAPI's own /docs and /openapi.json would describe only these routes: /docs.json describes all.
http = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@http.exception_handler(HTTPException)
async def _http_error(_: Request, exc: HTTPException) -> Response:
    """FastAPI's own 4xx (a wrong method on these routes) in the service's error format."""
    return error_response(exc.status_code, str(exc.detail), None, dict(exc.headers or {}))


@http.get("/docs.json", include_in_schema=False)
def docs() -> dict[str, Any]:
    """BentoML's document, told the model, its errors and its key. It is served instead of BentoML's own
    /docs.json because BentoML routes a path to the mounted app first when the app has a route for it."""
    return _document()


@functools.cache
def _document() -> dict[str, Any]:
    return openapi_document(Classifier.openapi_spec.asdict(), config=CONFIG, bento_tag=BENTO_TAG,
                            api_paths=API_PATHS, open_paths=OPEN_PATHS,
                            key_required=bool(os.environ.get("MLOPS_API_KEY")))  # fmt: skip


@http.get("/metadata")
def metadata() -> dict[str, Any]:
    """Which model and bento this is and where it came from."""
    return {
        **CONFIG["metadata"],
        "bento_tag": BENTO_TAG,
        "model_tag": CONFIG["model_tag"],
        "task": TASK,
        "classes": CLASSES,
    }


@http.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok", "model_version": CONFIG["metadata"]["model_version"]}


BENTO_TAG = bento_tag(__file__)


@bentoml.service(
    name=CONFIG["service_name"],
    description=model_page(CONFIG, BENTO_TAG),  # the bento's README: the same page as /docs.json's
    workers=WORKERS,
    traffic={"timeout": 30},
    # Per-request access logs and OpenTelemetry spans cost more than the model call; the
    # Prometheus series cover the API. Override both with BENTOML_CONFIG when tracing is wanted.
    logging={"access": {"enabled": False}},
    tracing={"excluded_urls": sorted(API_PATHS)},
)
@bentoml.asgi_app(http, path="/")
class Classifier:
    model_ref = bentoml.models.BentoModel(CONFIG["model_tag"])

    def __init__(self) -> None:
        self.version = str(CONFIG["metadata"]["model_version"])
        self.validate = RequestValidator(CONFIG["schema"], max_batch=MAX_BATCH)
        self.metrics = metrics()
        self.predict_frame = fast_predictor(bentoml.mlflow.load_model(self.model_ref), TASK, CLASSES)
        self.batcher = MicroBatcher(self._predict_columns, max(MAX_BATCH, 256))
        self.write = AnswerWriter(TASK, CLASSES, self.version)
        model = CONFIG["metadata"].get("registered_model") or CONFIG["service_name"]
        self.recorder = recorder_from_env(model, self.version, BENTO_TAG)  # None: not recording
        # exported from the start (as 0), so a dashboard sees the series before the first answer
        labelled(self.metrics.values if TASK == REGRESSION else self.metrics.low_confidence, self.version)
        gc.collect()
        gc.freeze()  # the loaded libraries and model are permanent: keep them out of GC pauses

    def _predict_columns(self, columns: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """One model call over a micro-batch: the requests' columns, concatenated."""
        self.metrics.batch_rows.observe(len(next(iter(columns.values()))))
        return self.predict_frame(frame_from_columns(columns))

    def _count(self, answers: Any, scores: np.ndarray) -> None:
        """The per-prediction series: labels and low confidence, or the values' histogram."""
        if TASK == REGRESSION:
            observe_values(labelled(self.metrics.values, self.version), answers)
            return
        for label, count in collections.Counter(answers).items():
            labelled(self.metrics.predictions, str(label), self.version).inc(count)
        if low := low_confidence_count(TASK, scores, LOW_CONFIDENCE):
            labelled(self.metrics.low_confidence, self.version).inc(low)

    async def _serve(self, body: Any) -> Response:
        try:
            if body.problem is not None:
                raise RequestError(f"body: not valid JSON ({body.problem})")
            columns = self.validate(records_from_body(body.value))
        except RequestError as err:
            return error_response(400, str(err), err.field)
        answers, scores = await self.batcher(columns)
        if TASK != REGRESSION:
            answers = answers.tolist()  # once: counted and written as plain Python values
        self._count(answers, scores)
        if self.recorder is not None:
            self.recorder.offer(columns, answers)  # sampled; queued for a writer thread, never raises
        return Response(self.write(answers, scores), media_type="application/json")

    # The APIs return a ready Response (skips BentoML's per-response schema work); the
    # annotation still documents the body in the OpenAPI spec (the task's fields).
    @bentoml.api(route="/predict", input_spec=PredictRequest)
    @_doc(f"Predict {ANSWER} for each record.")
    async def predict(self, body: PredictRequest) -> Predictions:
        return await self._serve(body)

    @bentoml.api(route="/batch_predict", input_spec=PredictRequest)
    async def batch_predict(self, body: PredictRequest) -> Predictions:
        """The same contract as /predict, for large batches."""
        return await self._serve(body)


Classifier.add_asgi_middleware(Gatekeeper, api_paths=API_PATHS, open_paths=OPEN_PATHS, max_body_bytes=MAX_BODY_BYTES)
