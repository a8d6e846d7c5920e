"""A fitted all-numeric impute-and-scale ColumnTransformer evaluated with numpy, for prediction.

Same floats as sklearn without its fixed per-call overhead. sklearn is imported
inside the functions that inspect a fitted transformer: importing it is slow, and
everything that handles a ``TrainedModel`` imports this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


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

    sklearn spends a fixed time per ``transform`` on input checks and pandas indexing,
    the same for 1 row as for 1000, and it dwarfs the arithmetic (fill NaN with the
    fitted statistics, subtract the mean, divide by the scale) for the small batches
    a service sees. Same operations in the same order, so the same floats; each group
    is also checked against sklearn when built.
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
