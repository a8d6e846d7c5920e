"""The BentoML service: a thin class over the registered MLflow model.

This file is copied into each bento as ``service.py`` beside ``bento_config.json``
(model tag, lineage labels, request schema) and ``request_schema.py``. The model is
declared at class level so the bento records exactly one model version.

Hot path: requests are validated in the event loop (a ``RequestValidator`` compiled
once), then concurrent requests are coalesced into one model call (``MicroBatcher``),
because a model call costs about as much for 1 row as for 100. The model is the
unwrapped python model behind the MLflow pyfunc (``predict_arrays``: the same code,
without pyfunc's per-call schema enforcement and without building result frames);
infra validation compares the served answers with the real pyfunc.

Environment (infrastructure only): ``MLOPS_API_KEY`` (required ``x-api-key`` header
on every route except the health probes), ``MLOPS_SERVE_WORKERS`` (processes).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import gc
import hmac
import json
import logging
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import bentoml
import numpy as np
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel
from request_schema import RequestError, RequestValidator, frame_from_columns
from starlette.responses import Response

log = logging.getLogger("mlops.service")

CONFIG = json.loads((Path(__file__).parent / "bento_config.json").read_text())
MAX_BATCH = int(CONFIG.get("max_batch", 1000))
LOW_CONFIDENCE = float(CONFIG.get("low_confidence_threshold", 0.6))
WORKERS = int(os.environ.get("MLOPS_SERVE_WORKERS", CONFIG.get("workers", 1)))
API_PATHS = frozenset({"/predict", "/batch_predict"})
OPEN_PATHS = frozenset({"/health", "/healthz", "/livez", "/readyz"})
# Generous: the key plus up to 40 bytes per number, 300 per string, for MAX_BATCH records.
MAX_BODY_BYTES = 64 * 1024 + MAX_BATCH * sum(
    len(f["name"].encode()) + (40 if f["dtype"] in ("float", "int") else 300) for f in CONFIG["schema"]["features"]
)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Prediction(BaseModel):
    label: Any
    probability: float  # of the positive class
    model_version: str


class Predictions(BaseModel):
    predictions: list[Prediction]


_ENCODE = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps builds an encoder per call


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(_ENCODE(body), status_code=status, media_type="application/json")


def predictions_json(labels: list[Any], proba: np.ndarray, version: str) -> str:
    """``{"predictions": [{"label", "probability", "model_version"}, ...]}``, byte for byte what
    ``_ENCODE`` writes, at twice its speed for large batches: only the probabilities vary."""
    pairs = zip(labels, proba.tolist(), strict=True)
    if not np.isfinite(proba).all():  # repr() would write nan, not JSON's NaN
        return _ENCODE({"predictions": [{"label": y, "probability": p, "model_version": version} for y, p in pairs]})
    head = {y: f'{{"label": {_ENCODE(y)}, "probability": ' for y in set(labels)}
    tail = f', "model_version": {_ENCODE(version)}}}'
    return '{"predictions": [' + ", ".join([head[y] + repr(p) + tail for y, p in pairs]) + "]}"


def _bento_tag() -> str | None:
    """The exact tag of the bento this file runs from (``bento.yaml`` sits beside ``src/``)."""
    info = Path(__file__).resolve().parent.parent / "bento.yaml"
    if not info.is_file():
        return None  # served from source, not from a built bento
    import yaml

    data = yaml.safe_load(info.read_text())
    return f"{data['name']}:{data['version']}"


@functools.cache
def metrics() -> SimpleNamespace:
    """Our Prometheus series, created on first use: after BentoML has put the worker in
    prometheus multiprocess mode, so ``/metrics`` aggregates them over all workers."""
    import prometheus_client as prom

    return SimpleNamespace(
        predictions=prom.Counter("mlops_predictions", "Predictions served, by label", ["label", "model_version"]),
        low_confidence=prom.Counter(
            "mlops_low_confidence_predictions",
            f"Predictions with max(p, 1-p) < {LOW_CONFIDENCE}",
            ["model_version"],
        ),
        rejected=prom.Counter("mlops_rejected_requests", "Requests answered 4xx", ["endpoint", "reason"]),
        latency=prom.Histogram(
            "mlops_request_latency_seconds",
            "Prediction request latency",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
        ),
        batch_rows=prom.Histogram(
            "mlops_model_batch_rows",
            "Rows per model call",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
        ),
    )


@functools.cache
def _child(metric: Any, *labels: str) -> Any:
    """A labelled series, looked up once (``labels()`` is slow enough to show on the hot path)."""
    return metric.labels(*labels)


def _reason(status: int) -> str:
    reasons = {400: "invalid", 401: "unauthorized", 411: "no_length", 413: "too_large", 415: "media_type"}
    return reasons.get(status, str(status))


def _refuse_body(headers: dict[bytes, bytes]) -> tuple[int, dict[str, str]] | None:
    """JSON with a Content-Length within the limit only (BentoML's other decoders can 500)."""
    media_type = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
    if media_type != b"application/json":
        return 415, {
            "error": f"content-type {media_type.decode(errors='replace')!r}: send application/json",
            "field": "content-type",
        }
    length = headers.get(b"content-length", b"")
    if not length.isdigit():
        return 411, {"error": "send the body with a Content-Length header", "field": "content-length"}
    if int(length) > MAX_BODY_BYTES:
        return 413, {"error": f"records: request body exceeds {MAX_BODY_BYTES} bytes", "field": "records"}
    return None


class Gatekeeper:
    """ASGI middleware: API key, request-size limit, rejection and latency metrics."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.key = os.environ.get("MLOPS_API_KEY", "").encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        endpoint = path if path in API_PATHS else "other"
        headers = dict(scope["headers"])
        if self.key and path not in OPEN_PATHS and not hmac.compare_digest(headers.get(b"x-api-key", b""), self.key):
            _child(metrics().rejected, endpoint, "unauthorized").inc()
            body = {"error": "missing or wrong x-api-key header", "field": "x-api-key"}
            return await _json(401, body)(scope, receive, send)
        if endpoint == "other":
            return await self.app(scope, receive, send)
        if scope["method"] == "POST" and (refusal := _refuse_body(headers)):
            _child(metrics().rejected, endpoint, _reason(refusal[0])).inc()
            return await _json(*refusal)(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def send_and_watch(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            _child(metrics().latency, endpoint).observe(time.perf_counter() - start)
            if 400 <= status[0] < 500:
                _child(metrics().rejected, endpoint, _reason(status[0])).inc()


class MicroBatcher:
    """Coalesce concurrent requests into one model call; one call at a time per worker.

    No timer: a request queues and schedules a flush behind the callbacks already
    ready to run, so requests the event loop is handling at the same moment join the
    same call (up to ``max_rows``). An idle server answers at once; a busy one batches more.

    The model runs on the event loop thread. A model thread bought little (the GIL) and
    cost much: under load, a 2 ms model call took 12-25 ms from submit to result, as the
    thread waited for the busy loop to hand over the GIL (up to 5 ms, once per release).
    """

    def __init__(self, predict: Any, max_rows: int) -> None:
        self._predict, self._max_rows = predict, max_rows
        self._queue: collections.deque = collections.deque()
        self._scheduled = False

    async def __call__(self, columns: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((columns, len(next(iter(columns.values()))), future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        """Run one model call over the queued requests; schedule another if some are left."""
        batch = [self._queue.popleft()]
        rows = batch[0][1]
        while self._queue and rows + self._queue[0][1] <= self._max_rows:
            batch.append(self._queue.popleft())
            rows += batch[-1][1]
        if self._queue:
            asyncio.get_running_loop().call_soon(self._flush)  # after the answers below go out
        else:
            self._scheduled = False
        parts = [b[0] for b in batch]
        try:
            metrics().batch_rows.observe(rows)
            columns = parts[0] if len(parts) == 1 else {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
            labels, proba = self._predict(frame_from_columns(columns))
        except Exception as err:  # surfaces as a 500 on each waiting request
            for *_, future in batch:
                if not future.done():
                    future.set_exception(err)
            return
        start = 0
        for _, n, future in batch:
            if not future.done():  # a request cancelled while queued (timeout, client gone)
                future.set_result((labels[start : start + n], proba[start : start + n]))
            start += n


def fast_predictor(pyfunc: Any) -> Any:
    """``frame -> (labels, probabilities)`` using the python model behind the pyfunc if we can."""
    try:
        inner = pyfunc.unwrap_python_model()._model
    except Exception:  # not one of our models-from-code pyfuncs: go through pyfunc
        inner = None
    if hasattr(inner, "predict_arrays"):
        log.info("serving with %s", inner.predict_arrays.__qualname__)
        return inner.predict_arrays
    predict_frame = getattr(inner, "predict_frame", pyfunc.predict)
    log.info("serving with %s", getattr(predict_frame, "__qualname__", predict_frame))

    def predict(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        out = predict_frame(frame)
        return out["label"].to_numpy(), out["probability"].to_numpy(dtype=np.float64)

    return predict


http = FastAPI()


@http.get("/metadata")
def metadata() -> dict[str, Any]:
    """Which model and bento this is and where it came from."""
    return {**CONFIG["metadata"], "bento_tag": BENTO_TAG, "model_tag": CONFIG["model_tag"]}


@http.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok", "model_version": CONFIG["metadata"]["model_version"]}


BENTO_TAG = _bento_tag()


@bentoml.service(
    name=CONFIG["service_name"],
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
        self.batcher = MicroBatcher(fast_predictor(bentoml.mlflow.load_model(self.model_ref)), max(MAX_BATCH, 256))
        self.metrics = metrics()
        _child(self.metrics.low_confidence, self.version)  # exported as 0 from the start
        gc.collect()
        gc.freeze()  # the loaded libraries and model are permanent: keep them out of GC pauses

    async def _serve(self, records: list[dict[str, Any]]) -> Response:
        try:
            columns = self.validate(records)
        except RequestError as err:
            return _json(400, {"error": str(err), "field": err.field})
        labels, proba = await self.batcher(columns)
        low = int(np.count_nonzero(np.maximum(proba, 1.0 - proba) < LOW_CONFIDENCE))
        labels = labels.tolist()
        for label, count in collections.Counter(labels).items():
            _child(self.metrics.predictions, str(label), self.version).inc(count)
        if low:
            _child(self.metrics.low_confidence, self.version).inc(low)
        return Response(predictions_json(labels, proba, self.version), media_type="application/json")

    # The APIs return a ready Response (skips BentoML's per-response schema work); the
    # annotation still documents the body in the OpenAPI spec.
    @bentoml.api(route="/predict")
    async def predict(self, records: list[dict[str, Any]]) -> Predictions:
        """Predict a label and positive-class probability for each record."""
        return await self._serve(records)

    @bentoml.api(route="/batch_predict")
    async def batch_predict(self, records: list[dict[str, Any]]) -> Predictions:
        """The same contract as /predict, for large batches."""
        return await self._serve(records)


Classifier.add_asgi_middleware(Gatekeeper)
