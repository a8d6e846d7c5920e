"""LightGBM models kept in LightGBM's own text format: no pickle, and the same trees before and after a save.

A fitted LightGBM model is held as a ``lightgbm.Booster`` rebuilt from its text model right after
training, so the model in memory is exactly the one its file holds: predictions before saving and
after loading are the same floats. The text is stable: two fits on the same data with the same
parameters (``deterministic``, ``force_row_wise``, a seed) give the same bytes, which DVC relies on.
It holds nothing run-dependent (no time, path or host): its parameters block records the training
parameters, ``num_threads`` included: 1 for small data, else 0 (OpenMP's default, not this host's
core count), so it depends only on the number of training rows.
lightgbm is imported inside the functions: only LightGBM models need it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from components.model.tasks import MULTICLASS, REGRESSION

MODEL_FILE = "lightgbm_model.txt"


def booster_from_text(text: str) -> Any:
    import lightgbm

    return lightgbm.Booster(model_str=text)


def as_booster(fitted: Any) -> Any:
    """The Booster of a fitted ``LGBMClassifier``/``LGBMRegressor`` as its text model holds it."""
    return booster_from_text(fitted.booster_.model_to_string())


def save_booster(booster: Any, directory: Path) -> Path:
    path = Path(directory) / MODEL_FILE
    path.write_text(booster.model_to_string())
    return path


def load_booster(directory: Path) -> Any:
    import lightgbm

    return lightgbm.Booster(model_file=str(Path(directory) / MODEL_FILE))


def booster_scores(booster: Any, features: np.ndarray, task: str) -> np.ndarray:
    """Scores (``components.model.tasks``) of preprocessed features: the Booster's output is already
    P(class 1) for binary, ``(n, k)`` class probabilities for multiclass and the value for regression."""
    out = np.asarray(booster.predict(features), dtype=np.float64)
    if task == MULTICLASS:
        return out.reshape(len(features), -1)
    if task == REGRESSION or out.ndim == 1:
        return out
    raise ValueError(f"a binary LightGBM model gave {out.shape[1]} outputs per row")
