"""What ships inside an MLflow model: the canonical model input and the trained classifier.

``canonical_frame`` is the one place that turns data into model input; ``TrainedModel``
predicts from raw feature frames. Its numpy fast path is in ``fast_preprocessing``
and its pickle-free file format in ``files`` (both in this package, which imports
only from itself because it ships alone inside every model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from components.model.fast_preprocessing import FastPreprocessor, fast_preprocessor
from components.model.torch_net import mlp_proba

# The two kinds of feature a model sees. Numbers (int, float, nullable numerics) are float64 with NaN;
# everything else (categories, strings, booleans) is text with NaN for missing, whatever dtype carried it.
NUMBER, TEXT = "number", "text"
_SCHEMA_KINDS = {"double": NUMBER, "float": NUMBER, "long": NUMBER, "integer": NUMBER}


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
    """A fitted candidate that predicts from raw feature frames."""

    name: str
    family: str
    params: dict[str, Any]
    feature_columns: list[str]
    classes: list[Any]  # [negative, positive] as they appear in the target column
    estimator: Any  # sklearn Pipeline, or the torch module for torch_mlp
    preprocessor: Any = None  # fitted ColumnTransformer for torch_mlp
    threshold: float = 0.5
    extra: dict[str, Any] = field(default_factory=dict)
    kinds: dict[str, str] | None = None  # feature -> NUMBER | TEXT; None in models saved before kinds existed

    @cached_property
    def _fast(self) -> tuple[FastPreprocessor, Any] | None:
        """(numpy preprocessing, the model after it), when the pipeline allows it."""
        if self.family == "torch_mlp":
            prep, final = self.preprocessor, self.estimator
        else:
            steps = getattr(self.estimator, "steps", None)
            if not steps or len(steps) != 2 or hasattr(steps[1][1], "feature_names_in_"):
                return None
            prep, final = steps[0][1], steps[1][1]
        fast = fast_preprocessor(prep)
        return (fast, final) if fast is not None and fast.columns == list(self.feature_columns) else None

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Probability of the positive class (``classes[1]``) per row."""
        frame = self.model_input(X)
        features = self._fast[0].transform(frame.to_numpy()) if self._fast is not None else None
        if self.family == "torch_mlp":
            if features is None:
                features = self.preprocessor.transform(frame)
            return mlp_proba(self.estimator, features)
        if features is None:
            return self.estimator.predict_proba(frame)[:, 1].astype(np.float64)
        return self._fast[1].predict_proba(features)[:, 1].astype(np.float64)

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
        """(labels, positive-class probabilities) as arrays: ``predict_frame`` without the frame."""
        proba = self.predict_proba(X)
        return np.where(proba >= self.threshold, self.classes[1], self.classes[0]), proba

    def predict_frame(self, X: pd.DataFrame) -> pd.DataFrame:
        labels, proba = self.predict_arrays(X)
        return pd.DataFrame({"label": labels, "probability": proba}, index=X.index)
