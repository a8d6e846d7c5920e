"""Fit one named candidate for a task. Each family is a small function; dispatch is a dict.

The sklearn and LightGBM fitters are in ``sklearn_families``; the torch one is here.
sklearn, lightgbm and torch are imported inside the functions that fit with them:
importing any is slow, and a fit needs only its own family's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from components.model import tasks
from components.model.torch_net import fit_mlp
from components.model.trained import TrainedModel, canonical_frame, feature_kinds
from components.training import sklearn_families as sk
from components.training.candidate_settings import FAMILIES, FAMILY_TASKS, IMAGE_FAMILIES, NON_MODEL_KEYS
from components.training.features import build_preprocessor
from components.training.sklearn_families import SMALL_DATA_ROWS, Validation

log = logging.getLogger(__name__)

__all__ = ["NON_MODEL_KEYS", "SMALL_DATA_ROWS", "UnknownFamilyError", "check_family_task", "train_candidate"]


class UnknownFamilyError(ValueError):
    pass


def _fit_torch_mlp(X: pd.DataFrame, y: np.ndarray, params: dict[str, Any], seed: int, val: Validation, task: str):
    """Validation data is used only with early stopping, so a plain fit stays exactly as before."""
    prep = build_preprocessor(X).fit(X)
    features = prep.transform(X)
    patience = params.get("early_stopping_patience")
    X_val, y_val = (prep.transform(val[0]), val[1]) if patience and val is not None else (None, None)
    # Every class is in the training target (the classes are its distinct labels): one output per class.
    n_outputs = int(y.max()) + 1 if task == tasks.MULTICLASS else 1
    fit = fit_mlp(
        features,
        y,
        hidden=params["hidden"],
        epochs=params["epochs"],
        lr=params["lr"],
        batch_size=params["batch_size"],
        weight_decay=params.get("weight_decay", 0.0),
        seed=seed,
        X_val=X_val,
        y_val=y_val,
        patience=patience if X_val is not None else None,
        task=task,
        n_outputs=n_outputs,
    )
    extra = {"n_inputs": int(features.shape[1]), "n_outputs": n_outputs, "epochs_trained": fit.epochs_trained,
             "best_epoch": fit.best_epoch}  # fmt: skip
    if task == tasks.REGRESSION:  # the net predicts the standardised target: these turn it back into units
        extra.update(target_mean=fit.target_mean, target_std=fit.target_std)
    return fit.net, prep, extra


_FITTERS: dict[str, Callable] = {
    "sklearn_logreg": sk.fit_logreg,
    "sklearn_hgb": sk.fit_hgb,
    "torch_mlp": _fit_torch_mlp,
    "sklearn_ridge": sk.fit_ridge,
    "sklearn_rf": sk.fit_rf,
    "lightgbm": sk.fit_lightgbm,
}
assert tuple(_FITTERS) == tuple(f for f in FAMILIES if f not in IMAGE_FAMILIES)


@contextmanager
def _thread_limit(n_threads: int | None, *, torch_too: bool) -> Iterator[None]:
    """Cap BLAS/OpenMP (and torch) threads for the duration of a fit (None = leave as is)."""
    if n_threads is None:
        yield
        return
    torch = None
    if torch_too:
        import torch
    previous = torch.get_num_threads() if torch else 0
    if torch:
        torch.set_num_threads(n_threads)
    try:
        with threadpool_limits(limits=n_threads):
            yield
    finally:
        if torch:
            torch.set_num_threads(previous)


def check_family_task(family: str, task: str, name: str | None = None) -> None:
    """Refuse a family that cannot learn ``task`` (e.g. sklearn_ridge for a classification target)."""
    if family not in FAMILY_TASKS:
        raise UnknownFamilyError(f"unknown model family {family!r}; known families: {', '.join(FAMILIES)}")
    tasks.check_task(task)
    if task not in FAMILY_TASKS[family]:
        who = f"candidate '{name}': " if name else ""
        raise ValueError(f"{who}family '{family}' cannot learn task '{task}' "
                         f"(it learns: {', '.join(FAMILY_TASKS[family])})")  # fmt: skip


def _classes(task: str, y: pd.Series) -> list[Any]:
    """The classes a model of ``task`` learns from ``y``: its sorted distinct labels ([] for regression)."""
    if task == tasks.REGRESSION:
        return []
    classes = sorted(v for v in pd.unique(y).tolist() if not pd.isna(v))
    if task == tasks.BINARY and len(classes) != 2:
        raise ValueError(f"binary classification needs exactly two target labels, found {classes!r}")
    if task == tasks.MULTICLASS and len(classes) < 3:
        raise ValueError(f"multiclass classification needs at least three target labels, found {classes!r} "
                         "(two labels: use task binary)")  # fmt: skip
    return classes


def _validation(
    name: str, params: dict[str, Any], X: pd.DataFrame, task: str, classes: list[Any], X_val: pd.DataFrame | None, y_val
) -> Validation:
    """Validation data for the fitter; refuses early stopping without it rather than silently skipping it."""
    if (X_val is None) != (y_val is None):
        raise ValueError(f"candidate '{name}': pass both X_val and y_val, or neither")
    patience = params.get("early_stopping_patience")
    if patience and X_val is None:
        raise ValueError(
            f"candidate '{name}' sets early_stopping_patience={patience}, which needs validation data: "
            "pass X_val and y_val to train_candidate"
        )
    if X_val is None:
        return None
    missing = [c for c in X.columns if c not in X_val.columns]
    if missing:
        raise ValueError(f"candidate '{name}': X_val lacks training feature columns: {', '.join(map(str, missing))}")
    y_enc = tasks.encode_target(task, y_val, classes, f"candidate '{name}': y_val")
    return canonical_frame(X_val, feature_kinds(X)), y_enc


def train_candidate(
    name: str,
    family: str,
    params: dict[str, Any],
    X: pd.DataFrame,
    y: pd.Series,
    *,
    seed: int,
    threshold: float = 0.5,
    task: str = tasks.BINARY,
    X_val: pd.DataFrame | None = None,
    y_val: pd.Series | None = None,
) -> TrainedModel:
    """Fit candidate ``name`` of ``family`` for ``task`` on raw features ``X`` and target ``y``.

    binary needs exactly two labels (the sorted second is the positive class), multiclass at
    least three, regression numbers. ``params`` may be a whole candidate spec
    (``spec.model_dump()``): the ``family``, ``tasks``, ``enabled`` and ``search`` keys are
    ignored. ``X_val``/``y_val`` are used only by families that need them (early stopping
    of torch_mlp) and never to fit weights.
    """
    check_family_task(family, task, name)
    if family in IMAGE_FAMILIES:  # an image frame: its rows are files (components.training.image_fit)
        from components.training.image_fit import train_image_frame

        return train_image_frame(name, family, params, X, y, seed=seed, task=task, X_val=X_val, y_val=y_val)
    classes = _classes(task, y)
    y_enc = tasks.encode_target(task, y, classes, "y")
    params = {k: v for k, v in params.items() if k not in NON_MODEL_KEYS}
    kinds = feature_kinds(X)
    val = _validation(name, params, X, task, classes, X_val, y_val)
    X = canonical_frame(X, kinds)
    log.info("training %s (%s, %s) on %d rows", name, family, task, len(X))
    with _thread_limit(1 if len(X) < SMALL_DATA_ROWS else None, torch_too=family == "torch_mlp"):
        estimator, prep, extra = _FITTERS[family](X, y_enc, params, seed, val, task)
    return TrainedModel(
        name=name,
        family=family,
        params=params,
        feature_columns=list(X.columns),
        classes=classes,
        estimator=estimator,
        preprocessor=prep,
        threshold=threshold,
        extra=extra,
        kinds=kinds,
        task=task,
    )
