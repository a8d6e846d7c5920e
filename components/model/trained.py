"""A trained classifier with its preprocessing, and its pickle-free file format.

scikit-learn objects are stored with skops (loaded only if every type in the
file is from an allow-listed package); PyTorch weights as a ``state_dict``
loaded with ``weights_only=True``. Nothing here unpickles arbitrary files.

Prediction evaluates an all-numeric impute-and-scale ColumnTransformer with numpy
(``FastPreprocessor``): same floats as sklearn, without its fixed ~10 ms per call.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SAFE_TYPE_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")
META_FILE = "model.json"

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


class UnsafeModelFileError(ValueError):
    """A model file holds a type outside the allow-list; it was not loaded."""


@dataclass(frozen=True)
class _NumericStep:
    """One impute-then-scale group of a fitted ColumnTransformer, as plain arrays."""

    positions: np.ndarray  # of the group's columns in ``FastPreprocessor.columns``
    fill: np.ndarray | None  # SimpleImputer.statistics_
    mean: np.ndarray | None  # StandardScaler.mean_
    scale: np.ndarray | None  # StandardScaler.scale_

    def apply(self, block: np.ndarray) -> np.ndarray:
        out = np.where(np.isnan(block), self.fill, block) if self.fill is not None else block.copy()
        if self.mean is not None:
            out -= self.mean
        if self.scale is not None:
            out /= self.scale
        return out


def _numeric_step(transformer: Any, positions: np.ndarray) -> _NumericStep | None:
    """The arrays of ``[SimpleImputer] -> [StandardScaler]`` if that is all ``transformer`` is."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    steps = [s for _, s in transformer.steps] if type(transformer) is Pipeline else [transformer]
    imputers = [s for s in steps if type(s) is SimpleImputer]
    scalers = [s for s in steps if type(s) is StandardScaler]
    if steps != imputers + scalers or len(imputers) > 1 or len(scalers) > 1:
        return None
    fill = mean = scale = None
    if imputers:
        imp = imputers[0]
        stats = np.asarray(imp.statistics_)
        missing = imp.missing_values
        if imp.add_indicator or not (isinstance(missing, float) and math.isnan(missing)):
            return None
        if stats.dtype != np.float64 or np.isnan(stats).any():  # sklearn would drop those columns
            return None
        fill = stats
    if scalers:
        scaler = scalers[0]
        mean = scaler.mean_ if scaler.with_mean else None  # mean_ is kept for with_std alone too
        scale = scaler.scale_ if scaler.with_std else None
    return _NumericStep(positions, fill, mean, scale)


@dataclass(frozen=True)
class FastPreprocessor:
    """A fitted all-numeric ColumnTransformer evaluated with numpy.

    sklearn spends ~10 ms per ``transform`` on input checks and pandas indexing, for
    1 row as for 1000; the arithmetic (fill NaN with the fitted statistics, subtract
    the mean, divide by the scale) is microseconds. Same operations in the same order,
    so the same floats; each group is also checked against sklearn when built.
    """

    columns: list[str]
    steps: tuple[_NumericStep, ...]

    def transform(self, block: np.ndarray) -> np.ndarray | None:
        """Preprocessed features of ``block`` (columns in ``columns`` order), or None when sklearn
        must decide (a non-numeric block; infinities, which sklearn rejects)."""
        if block.dtype.kind in "iu":
            block = block.astype(np.float64)  # as sklearn's input check does
        if block.dtype != np.float64 or np.isinf(block).any():
            return None
        parts = [step.apply(block[:, step.positions]) for step in self.steps]
        return parts[0] if len(parts) == 1 else np.hstack(parts)


def fast_preprocessor(ct: Any) -> FastPreprocessor | None:
    """A ``FastPreprocessor`` equal to fitted ColumnTransformer ``ct``, or None if we cannot."""
    from sklearn.compose import ColumnTransformer

    if type(ct) is not ColumnTransformer or ct.transformer_weights or getattr(ct, "sparse_output_", True):
        return None
    if not hasattr(ct, "feature_names_in_"):
        return None
    columns = [str(c) for c in ct.feature_names_in_]
    index = {c: i for i, c in enumerate(columns)}
    steps = []
    for _, transformer, selected in ct.transformers_:
        if isinstance(transformer, str) and transformer == "drop":
            continue
        if not isinstance(selected, list | tuple) or not all(isinstance(c, str) and c in index for c in selected):
            return None
        if not selected:
            continue
        step = _numeric_step(transformer, np.array([index[c] for c in selected], dtype=np.intp))
        if step is None or not _agrees(step, transformer, list(selected)):
            return None
        steps.append(step)
    return FastPreprocessor(columns, tuple(steps)) if steps else None


def _agrees(step: _NumericStep, transformer: Any, selected: list[str]) -> bool:
    """Probe rows (fitted values, missing values, a spread) give sklearn's answer exactly."""
    base = step.fill if step.fill is not None else np.zeros(len(selected))
    spread = base + (step.scale if step.scale is not None else 1.0) * np.linspace(-3, 3, len(selected))
    probe = np.vstack([base, spread, np.full(len(selected), np.nan) if step.fill is not None else -spread])
    try:
        expected = transformer.transform(pd.DataFrame(probe, columns=selected))
    except Exception:
        return False
    ours = step.apply(probe)
    return isinstance(expected, np.ndarray) and expected.shape == ours.shape and np.array_equal(expected, ours)


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
            from components.model.torch_net import mlp_proba

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


def _skops_dump(obj: Any, path: Path) -> None:
    import skops.io as sio

    sio.dump(obj, path)
    _stable_skops(path)


def _stable_skops(path: Path) -> None:
    """Rewrite a skops file so that equal objects give equal bytes.

    skops names archive entries and ``__id__`` fields after ``id()`` of the saved
    objects and stamps entries with the current time, which all change from run to
    run. Ids are renumbered in schema order and times fixed; loading is unaffected.
    """
    with zipfile.ZipFile(path) as archive:
        schema = json.loads(archive.read("schema.json"))
        blobs = {n: archive.read(n) for n in archive.namelist() if n != "schema.json"}
    ids: dict[Any, int] = {}
    files: dict[str, bytes] = {}

    def new_id(old: Any) -> int:
        return ids.setdefault(int(old) if str(old).isdigit() else old, len(ids) + 1)

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for key, value in node.items():
            if key == "__id__":
                out[key] = new_id(value)
            elif key == "file" and isinstance(value, str) and value in blobs:
                stem, _, ext = value.partition(".")
                out[key] = f"{new_id(stem)}.{ext}"
                files[out[key]] = blobs[value]
            else:
                out[key] = walk(value)
        return out

    schema = walk(schema)
    files["schema.json"] = json.dumps(schema, indent=2).encode()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(files):
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), files[name])


def _skops_load(path: Path) -> Any:
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=path)
    unsafe = [t for t in untrusted if not t.startswith(SAFE_TYPE_PREFIXES)]
    if unsafe:
        raise UnsafeModelFileError(f"{path.name} holds types outside the allow-list: {', '.join(unsafe)}")
    return sio.load(path, trusted=untrusted)


def save_model(model: TrainedModel, directory: str | Path) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = {
        "name": model.name,
        "family": model.family,
        "params": model.params,
        "feature_columns": model.feature_columns,
        "classes": [c.item() if hasattr(c, "item") else c for c in model.classes],
        "threshold": model.threshold,
        "kinds": model.kinds,
    }
    if model.family == "torch_mlp":
        import torch

        _skops_dump(model.preprocessor, directory / "preprocessor.skops")
        torch.save(model.estimator.state_dict(), directory / "mlp_state.pt")
        meta["n_inputs"] = model.extra["n_inputs"]
    else:
        _skops_dump(model.estimator, directory / "estimator.skops")
    (directory / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
    return directory


def load_model(directory: str | Path) -> TrainedModel:
    directory = Path(directory)
    meta = json.loads((directory / META_FILE).read_text())
    common = {k: meta[k] for k in ("name", "family", "params", "feature_columns", "classes", "threshold")}
    kinds = meta.get("kinds")  # model.json sorts its keys: the column order is feature_columns'
    common["kinds"] = None if kinds is None else {c: kinds[c] for c in meta["feature_columns"]}
    if meta["family"] == "torch_mlp":
        import torch

        from components.model.torch_net import build_mlp

        net = build_mlp(meta["n_inputs"], meta["params"]["hidden"])
        net.load_state_dict(torch.load(directory / "mlp_state.pt", weights_only=True))
        net.eval()
        return TrainedModel(
            **common,
            estimator=net,
            preprocessor=_skops_load(directory / "preprocessor.skops"),
            extra={"n_inputs": meta["n_inputs"]},
        )
    return TrainedModel(**common, estimator=_skops_load(directory / "estimator.skops"))
