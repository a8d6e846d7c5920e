"""Preprocessing that travels with every model, whatever its family.

sklearn is imported inside ``build_preprocessor``: importing it is slow.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def column_kinds(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Split feature columns into numeric and categorical, in frame order."""
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c]) and frame[c].dtype != bool]
    categorical = [c for c in frame.columns if c not in numeric]
    return numeric, categorical


def build_preprocessor(frame: pd.DataFrame):
    """Impute, scale numeric and one-hot categorical columns (unseen categories are ignored)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric, categorical = column_kinds(frame)
    transformers = []
    if numeric:
        transformers.append(
            (
                "num",
                Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
                numeric,
            )
        )
    if categorical:
        # One-hot values (0 and 1) are exact in float32. Beside a float64 numeric block the stacked
        # output is float64 exactly as before, but the one-hot block built on the way takes half the
        # memory, which matters for many rows times many categories. Without numeric columns: float64.
        dtype = np.float32 if numeric else np.float64
        onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=dtype)
        transformers.append(
            (
                "cat",
                Pipeline([("impute", SimpleImputer(strategy="most_frequent")), ("onehot", onehot)]),
                categorical,
            )
        )
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
