"""Fit one named candidate. Each family is a small function; dispatch is a dict."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from components.config import FAMILIES
from components.features import build_preprocessor
from components.model import TrainedModel

log = logging.getLogger(__name__)

# Below this many rows, thread start-up and spin-waiting cost more than they save.
SMALL_DATA_ROWS = 50_000


class UnknownFamilyError(ValueError):
    pass


def _fit_logreg(X: pd.DataFrame, y: np.ndarray, params: dict[str, Any], seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    clf = LogisticRegression(C=params["C"], max_iter=params["max_iter"], random_state=seed)
    return Pipeline([("prep", build_preprocessor(X)), ("model", clf)]).fit(X, y), None, {}


def _fit_hgb(X: pd.DataFrame, y: np.ndarray, params: dict[str, Any], seed: int):
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


def _fit_torch_mlp(X: pd.DataFrame, y: np.ndarray, params: dict[str, Any], seed: int):
    from components.torch_mlp import fit_mlp

    prep = build_preprocessor(X).fit(X)
    features = prep.transform(X)
    net = fit_mlp(
        features,
        y,
        hidden=params["hidden"],
        epochs=params["epochs"],
        lr=params["lr"],
        batch_size=params["batch_size"],
        weight_decay=params.get("weight_decay", 0.0),
        seed=seed,
    )
    return net, prep, {"n_inputs": int(features.shape[1])}


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
    from threadpoolctl import threadpool_limits

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


def train_candidate(
    name: str,
    family: str,
    params: dict[str, Any],
    X: pd.DataFrame,
    y: pd.Series,
    *,
    seed: int,
    threshold: float = 0.5,
) -> TrainedModel:
    """Fit candidate ``name`` on raw features ``X``; the target must have exactly two labels."""
    if family not in _FITTERS:
        raise UnknownFamilyError(f"unknown model family {family!r}; known families: {', '.join(_FITTERS)}")
    classes = sorted(pd.unique(y).tolist())
    if len(classes) != 2:
        raise ValueError(f"binary classification needs exactly two target labels, found {classes!r}")
    y_bin = (y.to_numpy() == classes[1]).astype(np.int64)
    log.info("training %s (%s) on %d rows", name, family, len(X))
    with _thread_limit(1 if len(X) < SMALL_DATA_ROWS else None, torch_too=family == "torch_mlp"):
        estimator, prep, extra = _FITTERS[family](X, y_bin, params, seed)
    return TrainedModel(
        name=name,
        family=family,
        params={k: v for k, v in params.items() if k not in ("family", "enabled")},
        feature_columns=list(X.columns),
        classes=classes,
        estimator=estimator,
        preprocessor=prep,
        threshold=threshold,
        extra=extra,
    )
