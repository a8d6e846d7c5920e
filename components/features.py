"""Preprocessing that travels with every model, whatever its family."""

from __future__ import annotations

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
        transformers.append(
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categorical,
            )
        )
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
