"""What ships inside an MLflow model: the canonical model input and the trained model.

``canonical_frame`` is the one place that turns data into model input; ``TrainedModel``
predicts from raw feature frames, for any task (``tasks``). Its numpy fast path is in
``fast_preprocessing`` and its pickle-free file format in ``files`` (all in this package,
which imports only from itself because it ships alone inside every model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from components.model import tasks
from components.model.fast_preprocessing import FastPreprocessor, fast_preprocessor
from components.model.lgbm import booster_scores
from components.model.torch_net import mlp_scores

# The two kinds of feature a model sees. Numbers (int, float, nullable numerics) are float64 with NaN;
# everything else (categories, strings, booleans) is text with NaN for missing, whatever dtype carried it.
NUMBER, TEXT = "number", "text"
_SCHEMA_KINDS = {"double": NUMBER, "float": NUMBER, "long": NUMBER, "integer": NUMBER}
# Families whose ``estimator`` is the model after a separate fitted ``preprocessor`` (the others: an sklearn Pipeline).
SEPARATE_PREPROCESSOR = ("torch_mlp", "lightgbm")


def feature_kinds(frame: pd.DataFrame) -> dict[str, str]:
    """The kind of each column of a training frame (booleans are text: two categories, not a scale)."""
    return {
        str(c): NUMBER if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]) else TEXT
        for c in frame.columns
    }


def _number(series: pd.Series) -> np.ndarray:
    if series.dtype == np.float64:
        return series.to_numpy()
    if series.dtype == object:  # JSON numbers, or text that should have been numbers
        return pd.to_numeric(series, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def _text(series: pd.Series, keep_categorical: bool) -> pd.Series | np.ndarray:
    if isinstance(series.dtype, pd.CategoricalDtype):
        cats = series.cat.categories
        if not pd.api.types.is_string_dtype(cats) or pd.api.types.is_bool_dtype(cats):
            series = series.cat.rename_categories([str(c) for c in cats])
        return series if keep_categorical else series.to_numpy(dtype=object, na_value=np.nan)
    if pd.api.types.is_bool_dtype(series) and not series.isna().any():
        return np.where(series.to_numpy(dtype=bool), "True", "False").astype(object)
    values = series.to_numpy(dtype=object, na_value=np.nan)
    missing = pd.isna(values)
    if missing.any():
        values = values.copy()
        values[missing] = np.nan
    if not all(type(v) is str for v in values[~missing]):  # bools from JSON, numbers in a text column
        values = np.array([v if m else str(v) for v, m in zip(values, missing, strict=True)], dtype=object)
    return values


def canonical_frame(frame: pd.DataFrame, kinds: dict[str, str], *, keep_categorical: bool = True) -> pd.DataFrame:
    """``frame``'s features as every model takes them: the one place that turns data into model input.

    Training, in-process prediction, the pyfunc and the service all pass through here, so a category,
    a string, a nullable integer or a boolean gives the same prediction whichever way it arrived.
    ``keep_categorical=False`` also turns categoricals into plain text, which MLflow's schema requires.
    """
    missing = [c for c in kinds if c not in frame.columns]
    if missing:
        raise KeyError(f"missing feature columns: {', '.join(missing)}")
    columns = {
        c: _number(frame[c]) if kind == NUMBER else _text(frame[c], keep_categorical) for c, kind in kinds.items()
    }
    return pd.DataFrame(columns, index=frame.index, copy=False)


def pyfunc_input(pyfunc: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as the MLflow signature of ``pyfunc`` declares its input (every pyfunc caller uses this)."""
    schema = pyfunc.metadata.get_input_schema()
    if schema is None:
        return frame
    kinds = {spec.name: _SCHEMA_KINDS.get(getattr(spec.type, "name", str(spec.type)), TEXT) for spec in schema.inputs}
    return canonical_frame(frame, kinds, keep_categorical=False)


@dataclass(frozen=True)
class TrainedModel:
    """A fitted candidate that predicts from raw feature frames.

    Its *scores* (``predict_scores``) follow ``components.model.tasks``: P(``classes[1]``) for binary,
    ``(n, k)`` class probabilities for multiclass, the value for regression.
    """

    name: str
    family: str
    params: dict[str, Any]
    feature_columns: list[str]
    classes: list[Any]  # binary [negative, positive]; multiclass sorted labels; regression []
    estimator: Any  # sklearn Pipeline, the torch module (torch_mlp) or a lightgbm.Booster (lightgbm)
    preprocessor: Any = None  # fitted ColumnTransformer for torch_mlp and lightgbm
    threshold: float = 0.5
    extra: dict[str, Any] = field(default_factory=dict)
    kinds: dict[str, str] | None = None  # feature -> NUMBER | TEXT; None in models saved before kinds existed
    task: str = tasks.BINARY  # the default loads models saved before tasks existed, all binary

    @cached_property
    def _fast(self) -> tuple[FastPreprocessor, Any] | None:
        """(numpy preprocessing, the model after it), when the pipeline allows it."""
        if self.family in SEPARATE_PREPROCESSOR:
            prep, final = self.preprocessor, self.estimator
        else:
            steps = getattr(self.estimator, "steps", None)
            if not steps or len(steps) != 2 or hasattr(steps[1][1], "feature_names_in_"):
                return None
            prep, final = steps[0][1], steps[1][1]
        fast = fast_preprocessor(prep)
        return (fast, final) if fast is not None and fast.columns == list(self.feature_columns) else None

    def predict_scores(self, X: pd.DataFrame) -> np.ndarray:
        """Scores per row of raw features ``X``: P(``classes[1]``) ``(n,)``, class probabilities ``(n, k)``
        in ``classes`` order, or predicted values ``(n,)``, by ``task``."""
        frame = self.model_input(X)
        features = self._fast[0].transform(frame.to_numpy()) if self._fast is not None else None
        if self.family in SEPARATE_PREPROCESSOR:
            if features is None:
                features = self.preprocessor.transform(frame)
            return self._final_scores(self.estimator, features)
        if features is None:
            return self._final_scores(self.estimator, frame)  # the whole Pipeline
        return self._final_scores(self._fast[1], features)

    def _final_scores(self, model: Any, inputs: Any) -> np.ndarray:
        if self.family == "torch_mlp":
            mean, std = self.extra.get("target_mean", 0.0), self.extra.get("target_std", 1.0)
            return mlp_scores(model, inputs, self.task, mean, std)
        if self.family == "lightgbm":
            return booster_scores(model, inputs, self.task)
        if self.task == tasks.REGRESSION:
            return np.asarray(model.predict(inputs), dtype=np.float64)
        proba = model.predict_proba(inputs)
        return proba[:, 1].astype(np.float64) if self.task == tasks.BINARY else proba.astype(np.float64)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Binary: P(``classes[1]``) per row; multiclass: ``(n, k)`` in ``classes`` order. Not for regression."""
        if self.task == tasks.REGRESSION:
            raise TypeError(f"model '{self.name}' has task 'regression': it predicts values, not probabilities "
                            "(use predict_scores)")  # fmt: skip
        return self.predict_scores(X)

    def encode_target(self, y: Any, what: str = "y") -> np.ndarray:
        """Target values as metrics take them: 0/1 (binary), class index (multiclass), float64 (regression)."""
        return tasks.encode_target(self.task, y, self.classes, what)

    def model_input(self, X: pd.DataFrame) -> pd.DataFrame:
        """The feature columns of ``X`` in training order and canonical types."""
        if self.kinds is not None:
            return canonical_frame(X, self.kinds)
        if X.columns.tolist() == self.feature_columns:
            return X
        missing = [c for c in self.feature_columns if c not in set(X.columns)]
        if missing:
            raise KeyError(f"missing feature columns: {', '.join(missing)}")
        return X[self.feature_columns]

    def predict_arrays(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(answers, scores) as arrays: labels for classification (binary by ``threshold``, multiclass the
        most probable class), the values themselves for regression. ``predict_frame`` without the frame."""
        scores = self.predict_scores(X)
        return tasks.labels_from_scores(self.task, scores, self.classes, self.threshold), scores

    def predict_frame(self, X: pd.DataFrame) -> pd.DataFrame:
        """What the MLflow pyfunc returns. binary: ``label``, ``probability`` (of ``classes[1]``);
        multiclass: ``label``, ``probability`` (of that label), then ``proba_<class>`` per class;
        regression: ``value``."""
        answers, scores = self.predict_arrays(X)
        if self.task == tasks.REGRESSION:
            return pd.DataFrame({"value": answers}, index=X.index)
        if self.task == tasks.BINARY:
            return pd.DataFrame({"label": answers, "probability": scores}, index=X.index)
        columns = {"label": answers, "probability": scores.max(axis=1)}  # argmax's probability
        columns.update({tasks.proba_column(c): scores[:, i] for i, c in enumerate(self.classes)})
        return pd.DataFrame(columns, index=X.index)
