"""Fit one named candidate. Each family is a small function; dispatch is a dict.

sklearn and torch are imported inside the functions that fit with them: importing
either is slow, and a fit needs only its own family's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from components.model.torch_net import fit_mlp
from components.model.trained import TrainedModel, canonical_frame, feature_kinds
from components.settings_base import ConfigError
from components.training.candidate_settings import FAMILIES
from components.training.features import build_preprocessor

log = logging.getLogger(__name__)

# Below this many rows, thread start-up and spin-waiting cost more than they save.
SMALL_DATA_ROWS = 50_000


class UnknownFamilyError(ValueError):
    pass


# Validation data for a fitter: raw features and the 0/1 target, or None.
Validation = tuple[pd.DataFrame, np.ndarray] | None

# Keys of a candidate spec that configure the pipeline, not the model.
NON_MODEL_KEYS = ("family", "enabled", "search")


def _fit_logreg(X: pd.DataFrame, y: np.ndarray, params: dict[str, Any], seed: int, val: Validation):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    clf = LogisticRegression(C=params["C"], max_iter=params["max_iter"], random_state=seed)
    return Pipeline([("prep", build_preprocessor(X)), ("model", clf)]).fit(X, y), None, {}


def _fit_hgb(X: pd.DataFrame, y: np.ndarray, params: dict[str, Any], seed: int, val: Validation):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline

    clf = HistGradientBoostingClassifier(
        learning_rate=params["learning_rate"],
        max_iter=params["max_iter"],
        max_leaf_nodes=params["max_leaf_nodes"],
        early_stopping=False,
        random_state=seed,
    )
    return Pipeline([("prep", build_preprocessor(X)), ("model", clf)]).fit(X, y), None, {}


def _fit_torch_mlp(X: pd.DataFrame, y: np.ndarray, params: dict[str, Any], seed: int, val: Validation):
    """Validation data is used only with early stopping, so a plain fit stays exactly as before."""
    prep = build_preprocessor(X).fit(X)
    features = prep.transform(X)
    patience = params.get("early_stopping_patience")
    X_val, y_val = (prep.transform(val[0]), val[1]) if patience and val is not None else (None, None)
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
    )
    extra = {"n_inputs": int(features.shape[1]), "epochs_trained": fit.epochs_trained, "best_epoch": fit.best_epoch}
    return fit.net, prep, extra


_FITTERS: dict[str, Callable] = {
    "sklearn_logreg": _fit_logreg,
    "sklearn_hgb": _fit_hgb,
    "torch_mlp": _fit_torch_mlp,
}
assert set(_FITTERS) == set(FAMILIES)


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


def check_supported_target(labels: Any, target: str, *, where: str = "data") -> None:
    """Refuse, before any training, a target this pipeline cannot learn yet (anything but two labels)."""
    distinct = sorted({str(v) for v in labels if not pd.isna(v)})
    if len(distinct) == 2:
        return
    shown = ", ".join(distinct[:10]) + (", ..." if len(distinct) > 10 else "")
    raise ConfigError(
        f"{where}: target '{target}' has {len(distinct)} distinct label(s) ({shown}); this pipeline trains "
        "binary classification only (exactly two labels). Multiclass and regression are not supported yet."
    )


def _binary_target(y: pd.Series, classes: list[Any], what: str) -> np.ndarray:
    """Encode labels as 0/1 with ``classes[1]`` as the positive class; unseen labels are an error."""
    unseen = sorted(set(pd.unique(y).tolist()) - set(classes), key=str)
    if unseen:
        raise ValueError(f"{what} has labels not seen in training: {unseen!r} (training labels: {classes!r})")
    return (y.to_numpy() == classes[1]).astype(np.int64)


def _validation(
    name: str, params: dict[str, Any], X: pd.DataFrame, classes: list[Any], X_val: pd.DataFrame | None, y_val
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
    return canonical_frame(X_val, feature_kinds(X)), _binary_target(y_val, classes, f"candidate '{name}': y_val")


def train_candidate(
    name: str,
    family: str,
    params: dict[str, Any],
    X: pd.DataFrame,
    y: pd.Series,
    *,
    seed: int,
    threshold: float = 0.5,
    X_val: pd.DataFrame | None = None,
    y_val: pd.Series | None = None,
) -> TrainedModel:
    """Fit candidate ``name`` on raw features ``X``; the target must have exactly two labels.

    ``params`` may be a whole candidate spec (``spec.model_dump()``): the
    ``family``, ``enabled`` and ``search`` keys are ignored. ``X_val``/``y_val``
    are used only by families that need them (early stopping of torch_mlp) and
    never to fit weights.
    """
    if family not in _FITTERS:
        raise UnknownFamilyError(f"unknown model family {family!r}; known families: {', '.join(_FITTERS)}")
    classes = sorted(pd.unique(y).tolist())
    if len(classes) != 2:
        raise ValueError(f"binary classification needs exactly two target labels, found {classes!r}")
    y_bin = _binary_target(y, classes, "y")
    params = {k: v for k, v in params.items() if k not in NON_MODEL_KEYS}
    kinds = feature_kinds(X)
    val = _validation(name, params, X, classes, X_val, y_val)
    X = canonical_frame(X, kinds)
    log.info("training %s (%s) on %d rows", name, family, len(X))
    with _thread_limit(1 if len(X) < SMALL_DATA_ROWS else None, torch_too=family == "torch_mlp"):
        estimator, prep, extra = _FITTERS[family](X, y_bin, params, seed, val)
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
    )
