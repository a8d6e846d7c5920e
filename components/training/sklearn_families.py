"""The scikit-learn and LightGBM families: the shared preprocessor, then one estimator per task.

Every fitter takes the canonical training frame, the encoded target (``components.model.tasks``),
the model params, the seed, validation data (unused here) and the task, and returns
``(estimator, preprocessor or None, extra)`` for ``TrainedModel``. Every estimator is seeded, so
the same data and seed give the same model. sklearn and lightgbm are imported inside the fitters:
importing either is slow, and a fit needs only its own family's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from components.model.lgbm import as_booster
from components.model.tasks import REGRESSION
from components.training.features import build_preprocessor

# Below this many rows, thread start-up and spin-waiting cost more than they save.
SMALL_DATA_ROWS = 50_000

# Validation data for a fitter: canonical features and the encoded target, or None.
Validation = tuple[pd.DataFrame, np.ndarray] | None
Fitted = tuple[Any, Any, dict[str, Any]]


def _pipeline(X: pd.DataFrame, y: np.ndarray, model: Any) -> Fitted:
    """The preprocessor and ``model`` as one sklearn Pipeline, fitted (it is the model's ``estimator``)."""
    from sklearn.pipeline import Pipeline

    return Pipeline([("prep", build_preprocessor(X)), ("model", model)]).fit(X, y), None, {}


def fit_logreg(X: pd.DataFrame, y: np.ndarray, params: dict[str, Any], seed: int, val: Validation, task: str):
    from sklearn.linear_model import LogisticRegression

    # With three or more classes lbfgs fits one multinomial model, so its probabilities sum to 1.
    return _pipeline(X, y, LogisticRegression(C=params["C"], max_iter=params["max_iter"], random_state=seed))


def fit_ridge(X: pd.DataFrame, y: np.ndarray, params: dict[str, Any], seed: int, val: Validation, task: str):
    from sklearn.linear_model import Ridge

    return _pipeline(X, y, Ridge(alpha=params["alpha"]))  # the default solvers for dense data are exact: no seed


def fit_hgb(X: pd.DataFrame, y: np.ndarray, params: dict[str, Any], seed: int, val: Validation, task: str):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = HistGradientBoostingRegressor if task == REGRESSION else HistGradientBoostingClassifier
    model = cls(
        learning_rate=params["learning_rate"],
        max_iter=params["max_iter"],
        max_leaf_nodes=params["max_leaf_nodes"],
        early_stopping=False,
        random_state=seed,
    )
    return _pipeline(X, y, model)


def fit_rf(X: pd.DataFrame, y: np.ndarray, params: dict[str, Any], seed: int, val: Validation, task: str):
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    cls = RandomForestRegressor if task == REGRESSION else RandomForestClassifier
    model = cls(
        n_estimators=params["n_estimators"],
        max_depth=params.get("max_depth"),
        min_samples_leaf=params["min_samples_leaf"],
        random_state=seed,
        n_jobs=1,  # fits run in parallel one level up (search batches, Dask); trees stay seeded either way
    )
    return _pipeline(X, y, model)


def fit_lightgbm(X: pd.DataFrame, y: np.ndarray, params: dict[str, Any], seed: int, val: Validation, task: str):
    """LightGBM after the same preprocessor as every family; the model is kept as its Booster.

    ``deterministic`` and ``force_row_wise`` make the trees depend only on the data, the params and
    the seed (not on the thread count or timing), so refits and their text files are identical.
    """
    from lightgbm import LGBMClassifier, LGBMRegressor

    cls = LGBMRegressor if task == REGRESSION else LGBMClassifier
    model = cls(
        n_estimators=params["n_estimators"],
        learning_rate=params["learning_rate"],
        num_leaves=params["num_leaves"],
        min_child_samples=params["min_child_samples"],
        random_state=seed,
        deterministic=True,
        force_row_wise=True,
        # 0 is OpenMP's default thread count, resolved when LightGBM runs. Not None: the sklearn wrapper turns
        # None into this machine's core count, which the text model records, so its bytes would vary by host.
        n_jobs=1 if len(X) < SMALL_DATA_ROWS else 0,
        verbose=-1,
    )
    prep = build_preprocessor(X).fit(X)
    model.fit(prep.transform(X), y)
    return as_booster(model), prep, {}
