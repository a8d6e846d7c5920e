"""The BentoML service: a thin class over the registered MLflow model.

This file is copied into each bento as ``service.py`` beside ``bento_config.json``
(model tag, lineage labels, request schema) and ``request_schema.py``. The model is
declared at class level so the bento records exactly one model version.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import bentoml
from bentoml.exceptions import InvalidArgument
from fastapi import FastAPI, Header, HTTPException
from request_schema import RequestError, validate_records

CONFIG = json.loads((Path(__file__).parent / "bento_config.json").read_text())
MAX_BATCH = int(CONFIG.get("max_batch", 1000))

http = FastAPI()


def _check_key(given: str | None) -> None:
    expected = os.environ.get("MLOPS_API_KEY")
    if expected and given != expected:
        raise HTTPException(status_code=401, detail="missing or wrong x-api-key header")


@http.get("/metadata")
def metadata(x_api_key: str | None = Header(default=None)) -> dict[str, Any]:
    """Which model this bento serves and where it came from."""
    _check_key(x_api_key)
    return CONFIG["metadata"]


@http.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok", "model_version": CONFIG["metadata"]["model_version"]}


@bentoml.service(name=CONFIG["service_name"], workers=1, traffic={"timeout": 30})
@bentoml.asgi_app(http, path="/")
class Classifier:
    model_ref = bentoml.models.BentoModel(CONFIG["model_tag"])

    def __init__(self) -> None:
        self.model = bentoml.mlflow.load_model(self.model_ref)
        self.version = CONFIG["metadata"]["model_version"]

    def _predict(self, records: Any, ctx: bentoml.Context) -> dict[str, Any]:
        _check_key(ctx.request.headers.get("x-api-key"))
        try:
            frame = validate_records(records, CONFIG["schema"], max_batch=MAX_BATCH)
        except RequestError as err:
            raise InvalidArgument(str(err)) from None
        out = self.model.predict(frame)
        return {
            "predictions": [
                {"label": label, "probability": float(p), "model_version": self.version}
                for label, p in zip(out["label"].tolist(), out["probability"].tolist(), strict=True)
            ]
        }

    @bentoml.api(route="/predict")
    def predict(self, records: list[dict[str, Any]], ctx: bentoml.Context) -> dict[str, Any]:
        """Predict a label and positive-class probability for each record."""
        return self._predict(records, ctx)

    @bentoml.api(route="/batch_predict")
    def batch_predict(self, records: list[dict[str, Any]], ctx: bentoml.Context) -> dict[str, Any]:
        """The same contract as /predict, for large batches."""
        return self._predict(records, ctx)
