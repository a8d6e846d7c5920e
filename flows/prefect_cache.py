"""Prefect's cache for trained candidates, keyed on the content hashes DVC uses for ``train@<candidate>``.

A fit is reused when its inputs are byte-for-byte the same: the content of the
train and validation splits it sees (which follow from the dataset md5, the
contract and the split params), the params keys the step reads (the same list
as the DVC stage) and the source of the modules it runs (the DVC stage's code
deps). Results are stored through ``TrainedResultSerializer``: skops files and a
``state_dict`` inside a zip, never a pickle.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from prefect.serializers import Serializer

from components.fingerprint import code_fingerprint

# What a fit runs: the DVC stage train@<candidate> lists these files as deps.
TRAIN_CODE = [  # what a fit runs: whole packages, so a new module there can never be forgotten
    "components.config",
    "components.settings_base",
    "components.vocabulary",
    "components.data.dataset",
    "components.evaluation.metrics",
    "components.training",
    "components.model",
    "components.images",  # the image families read pixels and fit there
]
# Bump when the stored format changes: old entries are then simply not found.
CACHE_FORMAT = "1"


def frame_hash(frame: pd.DataFrame) -> str:
    """Content hash of a frame: column names, dtypes and every value (index included)."""
    digest = hashlib.md5()
    digest.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return digest.hexdigest()


def fit_cache_key(
    *,
    data_key: str,
    spec: dict[str, Any],
    seed: int,
    threshold: float,
    target: str,
    metric: str,
    code: str,
    task: str = "binary",
) -> str:
    """One fit's key: its data, the params it reads (the candidate spec, seed, threshold, task) and its code."""
    blob = json.dumps(
        {
            "format": CACHE_FORMAT,
            "data": data_key,
            "spec": spec,
            "seed": seed,
            "threshold": threshold,
            "target": target,
            "metric": metric,
            "code": code,
            "task": task,
        },
        sort_keys=True,
        default=str,
    )
    return "fit-" + hashlib.sha256(blob.encode()).hexdigest()[:32]


def train_code_hash() -> str:
    return code_fingerprint(TRAIN_CODE)


def key_from_task_parameters(context: Any, parameters: dict[str, Any]) -> str:
    """Prefect ``cache_key_fn`` for the fit task (its parameters carry everything the key needs)."""
    return fit_cache_key(
        data_key=parameters["data_key"],
        spec=parameters["spec"],
        seed=parameters["seed"],
        threshold=parameters["threshold"],
        target=parameters["target"],
        metric=parameters["metric"],
        code=parameters["code"],
        task=parameters.get("task", "binary"),
    )


class TrainedResultSerializer(Serializer):
    """``(TrainedModel, EvalResult)`` to and from bytes with the project's pickle-free model format."""

    type: Literal["mlops-trained-result"] = "mlops-trained-result"

    def dumps(self, obj: Any) -> bytes:
        from dataclasses import asdict

        from components.model.files import save_model

        model, result = obj
        image = hasattr(model, "image")  # an ImageModel (components.images), stored in its own format
        buffer = io.BytesIO()
        with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(buffer, "w") as archive:
            if image:
                from components.images.model_files import save_image_model

                save_image_model(model, tmp)
            else:
                save_model(model, tmp)
            for file in sorted(Path(tmp).iterdir()):
                archive.write(file, f"model/{file.name}")
            archive.writestr("result.json", json.dumps(asdict(result), default=float))
            archive.writestr("extra.json", json.dumps({} if image else model.extra, default=str))
            archive.writestr("kind", "image" if image else "table")
        return base64.b64encode(buffer.getvalue())  # Prefect embeds the blob in a JSON record

    def loads(self, blob: bytes) -> Any:
        from dataclasses import replace

        from components.evaluation.metrics import EvalResult
        from components.model.files import load_model

        with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(io.BytesIO(base64.b64decode(blob))) as archive:
            for name in archive.namelist():
                if not name.startswith("model/") or "/" in name[len("model/") :] or ".." in name:
                    continue
                (Path(tmp) / name[len("model/") :]).write_bytes(archive.read(name))
            result = EvalResult(**json.loads(archive.read("result.json")))
            if "kind" in archive.namelist() and archive.read("kind") == b"image":
                from components.images.model_files import load_image_model

                return load_image_model(tmp), result
            model = load_model(tmp)
            extra = json.loads(archive.read("extra.json"))
        return replace(model, extra={**extra, **model.extra}), result
