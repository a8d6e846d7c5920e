"""The BentoML service of an image model: a thin class over the registered MLflow image pyfunc.

Copied into each image bento as ``image_service.py`` beside ``bento_config.json`` (model tag, classes,
image spec, limits, lineage) and every other module of ``components/serving``, of which it imports
``image_requests`` (multipart uploads and their middleware), ``gatekeeper`` (the error format, the
per-request series), ``micro_batching`` and ``answers``. The model is declared at class level so the
bento records exactly one model version.

Routes: ``POST /predict_image`` (one file in form field ``image``), ``POST /predict_images`` (up to
``max_batch`` files in fields ``images``), ``/metadata``; BentoML adds ``/healthz``, ``/readyz`` and
``/metrics``. Every refusal is a 4xx ``{"error", "field", "status"}`` naming the problem: 400 for what
cannot become model input (not an image, truncated, empty, wrong mode or size, a wrong field), 413 for
limits (bytes per file, body, files per request, and too many pixels: a decompression bomb is refused
from its header, before decoding). The Prometheus series are the tabular service's, by name and labels.

Decoding and prediction are the model's own (``ImageModel.pixels``, ``predict_arrays``), the code the
pyfunc runs, so served answers equal the pyfunc's; concurrent requests share one model call
(``MicroBatcher``). Environment: ``MLOPS_API_KEY`` and ``MLOPS_SERVE_WORKERS``, as for tables.
"""

from __future__ import annotations

import collections
import json
import logging
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import bentoml
import numpy as np
from answers import low_confidence_count
from bento_runtime import bento_tag, prediction_series
from fastapi import FastAPI
from gatekeeper import error_response, json_response, labelled
from image_requests import MULTIPART_OVERHEAD, ImageGatekeeper, UploadError, read_uploads
from micro_batching import MicroBatcher
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

log = logging.getLogger("mlops.image_service")

CONFIG = json.loads((Path(__file__).parent / "bento_config.json").read_text())
MAX_BATCH = int(CONFIG["max_batch"])
MAX_IMAGE_BYTES = int(CONFIG["max_image_bytes"])
CLASSES = [str(c) for c in CONFIG["classes"]]
LOW_CONFIDENCE = float(CONFIG.get("low_confidence_threshold", 0.6))
WORKERS = int(os.environ.get("MLOPS_SERVE_WORKERS", CONFIG.get("workers", 1)))
SINGLE, BATCH = "/predict_image", "/predict_images"
OPEN_PATHS = frozenset({"/health", "/healthz", "/livez", "/readyz"})
# A batch body is capped below max_batch full-size files: 1000 x 2 MB would let one request hold 2 GB.
MAX_BATCH_BODY = min(MAX_BATCH * MAX_IMAGE_BYTES, 64 * 1024 * 1024) + MULTIPART_OVERHEAD
LIMITS = {SINGLE: ("image", MAX_IMAGE_BYTES + MULTIPART_OVERHEAD), BATCH: ("images", MAX_BATCH_BODY)}


BENTO_TAG = bento_tag(__file__)


def metrics() -> SimpleNamespace:
    """The tabular service's per-prediction series, by the same names, labels and buckets."""
    return prediction_series("multiclass", LOW_CONFIDENCE)


def image_model(pyfunc: Any) -> Any:
    """The ``ImageModel`` behind the pyfunc, refused if its classes or image spec differ from the bento's."""
    try:
        model = pyfunc.unwrap_python_model()._model
    except Exception as err:
        raise TypeError(f"bento_config.json model_tag: not an image pyfunc of components.images ({err})") from None
    if [str(c) for c in model.classes] != CLASSES:
        raise ValueError(f"bento_config.json classes: {CLASSES}, but the model's are {list(model.classes)}")
    if model.image.to_dict() != CONFIG["image"]:
        raise ValueError(f"bento_config.json image: {CONFIG['image']}, but the model's is {model.image.to_dict()}")
    return model


http = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@http.exception_handler(HTTPException)
async def _http_error(_: Request, exc: HTTPException) -> Response:
    """FastAPI's own 4xx (a wrong method, say) in the service's error format."""
    return error_response(exc.status_code, str(exc.detail), None, dict(exc.headers or {}))


@http.get("/metadata")
def metadata() -> dict[str, Any]:
    """Which model and bento this is, its classes, the images it reads and the limits on them."""
    return {**CONFIG["metadata"], "bento_tag": BENTO_TAG, "model_tag": CONFIG["model_tag"], "kind": "image",
            "task": CONFIG["task"], "classes": CLASSES, "image": CONFIG["image"], "max_batch": MAX_BATCH,
            "max_image_bytes": MAX_IMAGE_BYTES}  # fmt: skip


@bentoml.service(
    name=CONFIG["service_name"],
    description=f"Image classifier {CONFIG['metadata'].get('registered_model')} v{CONFIG['metadata']['model_version']}",
    workers=WORKERS,
    traffic={"timeout": 30},
    logging={"access": {"enabled": False}},
    tracing={"excluded_urls": sorted(LIMITS)},
)
@bentoml.asgi_app(http, path="/")
class ImageClassifier:
    model_ref = bentoml.models.BentoModel(CONFIG["model_tag"])

    def __init__(self) -> None:
        self.version = str(CONFIG["metadata"]["model_version"])
        self.model = image_model(bentoml.mlflow.load_model(self.model_ref))
        self.metrics = metrics()
        self.batcher = MicroBatcher(self._predict_pixels, max(MAX_BATCH, 256))
        labelled(self.metrics.low_confidence, self.version)  # exported as 0 before the first answer

    def _predict_pixels(self, columns: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        self.metrics.batch_rows.observe(len(columns["pixels"]))
        return self.model.predict_arrays(columns["pixels"])

    def _pixels(self, uploads: list[tuple[str, bytes]], field: str) -> np.ndarray:
        """Model input of every upload; the first that fails is an UploadError naming it (413: a bomb)."""
        arrays = []
        for i, (name, data) in enumerate(uploads):
            try:
                arrays.append(self.model.pixels([data]))
            except ValueError as err:  # ImageDecodeError: ``problem`` in the manifest's words
                problem = getattr(err, "problem", str(err))
                where = field if field == "image" else f"{field}[{i}] ({name})"
                raise UploadError(413 if problem.startswith("too many pixels") else 400, f"{where}: {problem}",
                                  field) from None  # fmt: skip
        return np.concatenate(arrays)

    async def _predict(self, request: Request, field: str, max_files: int) -> list[dict[str, Any]] | Response:
        try:
            uploads = await read_uploads(request, field, max_files=max_files, max_file_bytes=MAX_IMAGE_BYTES)
            pixels = self._pixels(uploads, field)
        except UploadError as err:
            return error_response(err.status, str(err), err.field)
        labels, proba = await self.batcher({"pixels": pixels})
        labels = [str(label) for label in labels]
        for label, count in collections.Counter(labels).items():
            labelled(self.metrics.predictions, label, self.version).inc(count)
        if low := low_confidence_count("multiclass", proba, LOW_CONFIDENCE):
            labelled(self.metrics.low_confidence, self.version).inc(low)
        return [{"label": label, "probability": float(row.max()),
                 "probabilities": dict(zip(CLASSES, row.tolist(), strict=True))}
                for label, row in zip(labels, proba, strict=True)]  # fmt: skip

    @http.post(SINGLE)
    async def predict_image(self, request: Request) -> Response:
        """One PNG or JPEG in form field ``image``: its label and every class's probability."""
        answer = await self._predict(request, "image", 1)
        if isinstance(answer, Response):
            return answer
        return json_response(200, {**answer[0], "model_version": self.version})

    @http.post(BATCH)
    async def predict_images(self, request: Request) -> Response:
        """Up to ``max_batch`` images in form fields ``images``: one prediction each, in order."""
        answer = await self._predict(request, "images", MAX_BATCH)
        if isinstance(answer, Response):
            return answer
        return json_response(200, {"predictions": answer, "model_version": self.version})


ImageClassifier.add_asgi_middleware(ImageGatekeeper, limits=LIMITS, open_paths=OPEN_PATHS)
