"""Fit an image candidate from an image frame: the ``image`` column read as pixels, then the image families.

The pipeline's image frames are tables like any other (one row per file: ``image`` path, ``sha256``,
``label``), so the search, the fit cache and the Dask engine of the tabular candidates carry images
unchanged; only here do the rows become pixels.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from components.training.candidate_settings import NON_MODEL_KEYS

log = logging.getLogger(__name__)


def train_image_frame(
    name: str,
    family: str,
    params: dict[str, Any],
    X: pd.DataFrame,
    y: pd.Series,
    *,
    seed: int,
    task: str,
    X_val: pd.DataFrame | None,
    y_val: pd.Series | None,
):
    """Fit ``family`` on the images of ``X`` (read as ``params["image"]`` says) and labels ``y``.

    Image models train with validation data (early stopping, the validation loss), so ``X_val`` and
    ``y_val`` are required; the task follows the number of labels, as the contract's does.
    """
    from components.images.image_model import IMAGE_COLUMN, train_image_candidate
    from components.images.pixels import ImageSpec, load_pixels

    if X_val is None or y_val is None:
        raise ValueError(f"candidate '{name}': image families need validation images (X_val, y_val)")
    if not params.get("image"):
        raise ValueError(f"candidate '{name}': family {family} reads images, and the run has no image contract to "
                         "say their size and mode (validate.contract with kind: images)")  # fmt: skip
    for frame, what in ((X, "X"), (X_val, "X_val")):
        if IMAGE_COLUMN not in frame.columns:
            raise ValueError(f"candidate '{name}': {what} has no '{IMAGE_COLUMN}' column (got {list(frame.columns)})")
    spec = ImageSpec(**params["image"])
    pixels = load_pixels(X[IMAGE_COLUMN].tolist(), spec)
    val_pixels = load_pixels(X_val[IMAGE_COLUMN].tolist(), spec)
    hyper = {k: v for k, v in params.items() if k not in NON_MODEL_KEYS}
    log.info("training %s (%s) on %d images of %dx%d %s", name, family, len(pixels), spec.width, spec.height, spec.mode)
    model = train_image_candidate(name, family, hyper, pixels, y, val_pixels, y_val, seed, image=spec)
    if model.task != task:
        raise ValueError(f"candidate '{name}': {len(model.classes)} labels in the training images make a "
                         f"{model.task} model, but the run's task is {task}")  # fmt: skip
    return model
