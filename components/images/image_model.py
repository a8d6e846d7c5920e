"""What ships inside an image model: ``ImageModel``, the image counterpart of ``TrainedModel``, and its training.

Two families, both trained on the pixel arrays of ``pixels.load_pixels``:

- ``torch_cnn``: the small CNN of ``cnn``;
- ``sklearn_logreg_pixels``: a multinomial logistic regression on the flattened pixels, the baseline
  a CNN must beat to be worth its weight.

An ImageModel predicts from anything ``load_pixels`` reads (paths, encoded bytes, arrays) under the
image spec it was trained with, so the pyfunc and the service need no image code of their own.
Labels are folder names (text); ``classes`` is their sorted order, the order of every probability column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from components.images.cnn import DEFAULT_CHANNELS, cnn_probabilities, fit_cnn
from components.images.pixels import ImageSpec, load_pixels
from components.model import tasks

TORCH_CNN, SKLEARN_LOGREG = "torch_cnn", "sklearn_logreg_pixels"
# The one column of an image frame the model reads: a path, encoded bytes or a pixel array per row. The
# pipeline's frames also carry the label and each file's content hash; the pyfunc and the gate pass frames.
IMAGE_COLUMN = "image"
FAMILIES = (TORCH_CNN, SKLEARN_LOGREG)
# Every knob of each family, with its default; a params key outside these is a typo, and an error.
# On the digits the CNN defaults reach 0.96-0.98 held-out accuracy (augmented 0.98-0.99) in seconds on one
# thread; the logistic regression 0.95-0.96.
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    TORCH_CNN: {
        "epochs": 60,
        "batch_size": 64,
        "lr": 0.003,
        "weight_decay": 0.0,
        "patience": 5,
        "augment": False,
        "shift_pixels": 1,
        "brightness": 0.1,
        "channels": list(DEFAULT_CHANNELS),
    },
    SKLEARN_LOGREG: {"C": 1.0, "max_iter": 2000},
}


@dataclass(frozen=True)
class ImageModel:
    """A fitted image classifier. ``estimator`` is the torch module (eval mode) or a LogisticRegression
    whose classes are the indices of ``classes``; ``fit`` records how training went (plain data)."""

    name: str
    family: str
    classes: list[str]
    image: ImageSpec
    params: dict[str, Any]
    estimator: Any
    fit: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        """binary for two classes, multiclass for more, as ``components.model.tasks`` names them."""
        return tasks.BINARY if len(self.classes) == 2 else tasks.MULTICLASS

    @property
    def feature_columns(self) -> list[str]:
        """What a frame must carry for this model: its images (the tabular ``TrainedModel`` has the same name)."""
        return [IMAGE_COLUMN]

    @property
    def threshold(self) -> float:
        """Binary image models answer the more probable class (no tuned cut-off)."""
        return 0.5

    def pixels(self, images: Any, *, root: Any = None) -> np.ndarray:
        """``images`` (or a frame's ``image`` column) as this model's input ``(n, C, H, W)``; an
        ``ImageDecodeError`` names a bad one."""
        if isinstance(images, pd.DataFrame):
            if IMAGE_COLUMN not in images.columns:
                raise ValueError(f"an image frame needs an '{IMAGE_COLUMN}' column, got {list(images.columns)}")
            images = images[IMAGE_COLUMN].tolist()
        return load_pixels(images, self.image, root=root)

    def predict_proba(self, images: Any, *, root: Any = None) -> np.ndarray:
        """Class probabilities ``(n, k)`` in ``classes`` order (float64, rows sum to 1), whatever ``k``."""
        X = self.pixels(images, root=root)
        if self.family == TORCH_CNN:
            return cnn_probabilities(self.estimator, X)
        return self.estimator.predict_proba(X.reshape(len(X), -1)).astype(np.float64)

    def predict_scores(self, images: Any, *, root: Any = None) -> np.ndarray:
        """Scores as the tabular evaluation takes them (``tasks``): P(``classes[1]``) for binary, else ``(n, k)``."""
        proba = self.predict_proba(images, root=root)
        return proba[:, 1] if self.task == tasks.BINARY else proba

    def predict_arrays(self, images: Any, *, root: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """(labels, probabilities ``(n, k)``): the most probable class of each image, and all of them."""
        proba = self.predict_proba(images, root=root)
        return tasks.labels_from_scores(tasks.MULTICLASS, proba, self.classes), proba

    def predict_frame(self, images: Any, *, root: Any = None) -> pd.DataFrame:
        """What the pyfunc returns: ``label``, ``probability`` (of that label), then ``proba_<class>`` per class
        (the tabular multiclass columns, so the same consumers read both)."""
        labels, proba = self.predict_arrays(images, root=root)
        columns: dict[str, Any] = {"label": labels, "probability": proba.max(axis=1)}
        columns.update({tasks.proba_column(c): proba[:, i] for i, c in enumerate(self.classes)})
        return pd.DataFrame(columns)

    def encode_target(self, y: Any, what: str = "y") -> np.ndarray:
        """Labels as class indices; a label outside ``classes`` is an error naming ``what``."""
        return tasks.encode_target(tasks.MULTICLASS, pd.Series(np.asarray(y)).astype(str), self.classes, what)


def resolve_params(family: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """The family's defaults overridden by ``params``; an unknown family or key is an error naming it."""
    if family not in FAMILIES:
        raise ValueError(f"image model family {family!r} is not one of {', '.join(FAMILIES)}")
    defaults = DEFAULT_PARAMS[family]
    unknown = sorted(set(params or {}) - set(defaults))
    if unknown:
        raise ValueError(f"{family} params: unknown key(s) {', '.join(unknown)}; known: {', '.join(defaults)}")
    return defaults | dict(params or {})


def _logreg(X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray, params: dict, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    flat, flat_val = X.reshape(len(X), -1), X_val.reshape(len(X_val), -1)
    model = LogisticRegression(C=params["C"], max_iter=params["max_iter"], random_state=seed).fit(flat, y)
    val_loss = log_loss(y_val, model.predict_proba(flat_val), labels=model.classes_)
    return model, {"n_iter": int(np.max(model.n_iter_)), "val_loss": float(val_loss)}


def train_image_candidate(
    name: str,
    family: str,
    params: dict[str, Any] | None,
    X: np.ndarray,
    y: Any,
    X_val: np.ndarray,
    y_val: Any,
    seed: int,
    *,
    image: ImageSpec | None = None,
) -> ImageModel:
    """Fit one candidate on pixel arrays ``(n, C, H, W)`` (from ``load_pixels``) and their labels.

    ``classes`` are the training labels as text, sorted; a validation label outside them is an error.
    ``image`` is the spec the pixels were read with (what the model will read new images with); by
    default the arrays' own size, mode L (one channel) or RGB (three), resize none.
    """
    params = resolve_params(family, params)
    X, X_val = np.asarray(X, dtype=np.float32), np.asarray(X_val, dtype=np.float32)
    if X.ndim != 4 or X_val.shape[1:] != X.shape[1:]:
        raise ValueError(f"X and X_val must be images (n, C, H, W) of one shape, got {X.shape} and {X_val.shape}")
    if image is None:
        image = ImageSpec(width=X.shape[3], height=X.shape[2], mode={1: "L", 3: "RGB"}.get(X.shape[1], "?"))
    if X.shape[1:] != image.shape:
        raise ValueError(f"images of shape {X.shape[1:]} do not match the image spec's {image.shape}")
    labels = pd.Series(np.asarray(y)).astype(str)
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ValueError(f"training needs at least two labels, got {classes}")
    codes = tasks.encode_target(tasks.MULTICLASS, labels, classes, "y")
    val_codes = tasks.encode_target(tasks.MULTICLASS, pd.Series(np.asarray(y_val)).astype(str), classes, "y_val")
    if family == TORCH_CNN:
        cnn_params = {k: v for k, v in params.items() if k != "channels"}
        net, record = fit_cnn(X, codes, X_val, val_codes, seed=seed, channels=tuple(params["channels"]), **cnn_params)
        estimator, fit = (
            net,
            {
                "epochs_trained": record.epochs_trained,
                "best_epoch": record.best_epoch,
                "stopped_early": record.stopped_early,
                "train_losses": list(record.train_losses),
                "val_losses": list(record.val_losses),
            },
        )
    else:
        estimator, fit = _logreg(X, codes, X_val, val_codes, params, seed)
    return ImageModel(name, family, classes, image, params, estimator, fit)
