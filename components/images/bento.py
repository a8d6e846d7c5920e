"""Package a registered image model version as a BentoML bento: ``components.release.package`` for images.

The bento is built from the registry and tagged with an exact version; its labels carry the lineage.
It holds every module of ``components/serving`` (flat, as the tabular bento) and runs
``image_service:ImageClassifier``; its ``bento_config.json`` says what the service reads and answers:
the classes, the image spec, the batch and byte limits. Both are checked against what the model itself
recorded (``components.images.pyfunc.model_metadata``): a bento that would label answers with the wrong
classes, or read images under another spec, is not built.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from components.images.pixels import ImageSpec
from components.release.package import (
    copy_serving_modules,
    forget_service_modules,
    import_registered_model,
    label_value,
    model_card,
    pinned_requirements,
)

log = logging.getLogger(__name__)

SERVICE_ENTRY = "image_service:ImageClassifier"
# Beyond the tabular runtime (package.RUNTIME_PACKAGES): Pillow decodes uploads, python-multipart parses them.
IMAGE_PACKAGES = ("pillow", "python-multipart")


def mlmodel_metadata(mlflow_dir: Path) -> dict[str, Any]:
    """The ``metadata`` of the MLflow model's MLmodel file ({} if none)."""
    import yaml

    mlmodel = mlflow_dir / "MLmodel"
    return (yaml.safe_load(mlmodel.read_text()).get("metadata") or {}) if mlmodel.is_file() else {}


def image_serving_config(
    own: dict[str, Any], classes: list[str], image: ImageSpec, max_batch: int, max_image_bytes: int
) -> dict[str, Any]:
    """``classes``, ``image``, ``task`` and the limits for bento_config.json, checked against the model's
    own MLmodel metadata ``own``; a mismatch or a limit below 1 is a ValueError naming the field."""
    if own.get("kind") != "image":
        raise ValueError(f"model: not an image model logged by components.images.pyfunc (metadata {own!r})")
    if [str(c) for c in classes] != [str(c) for c in own.get("classes", [])]:
        raise ValueError(f"classes: {list(classes)!r} differ from the model's own {own.get('classes')!r}")
    if image.to_dict() != own.get("image"):
        raise ValueError(f"image: {image.to_dict()!r} differs from the model's own spec {own.get('image')!r}")
    for name, value in (("max_batch", max_batch), ("max_image_bytes", max_image_bytes)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: must be a positive integer, got {value!r}")
    return {"classes": [str(c) for c in classes], "image": image.to_dict(), "task": own.get("task", "multiclass"),
            "max_batch": max_batch, "max_image_bytes": max_image_bytes}  # fmt: skip


def build_image_bento(
    *,
    registered_model: str,
    version: str,
    service_name: str,
    metadata: dict[str, str],
    constraints: Path | None,
    max_batch: int,
    classes: list[str],
    image: ImageSpec,
    max_image_bytes: int = 2_000_000,
    low_confidence_threshold: float = 0.6,
) -> str:
    """Import ``models:/<registered_model>/<version>`` and build an image bento; return its exact tag."""
    import bentoml

    model_labels = {k: label_value(v) for k, v in metadata.items()}
    bento_model = import_registered_model(registered_model, version, service_name, model_labels)
    own = mlmodel_metadata(Path(bento_model.path_of("mlflow_model")))
    config = {
        **image_serving_config(own, classes, image, max_batch, max_image_bytes),
        "service_name": service_name,
        "model_tag": str(bento_model.tag),
        "low_confidence_threshold": low_confidence_threshold,
        "metadata": {**metadata, "registered_model": registered_model, "model_version": version},
        "model_card": model_card(registered_model, version),
    }
    forget_service_modules()  # a second build in this process must import this bento's service, not a cached one
    with tempfile.TemporaryDirectory(prefix="image-bento-build-") as ctx:
        ctx_path = Path(ctx)
        modules = copy_serving_modules(ctx_path)
        (ctx_path / "bento_config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        requirements = pinned_requirements(constraints, IMAGE_PACKAGES)
        (ctx_path / "requirements.txt").write_text("\n".join(requirements) + "\n")
        bento = bentoml.bentos.build(
            SERVICE_ENTRY,
            name=service_name,
            labels=model_labels,
            include=[*modules, "bento_config.json", "requirements.txt"],
            python={"requirements_txt": "requirements.txt", "lock_packages": False},
            build_ctx=str(ctx_path),
        )
    log.info("built image bento %s from %s v%s", bento.tag, registered_model, version)
    return str(bento.tag)
