"""Scoring rows with one model version: stable inference ids and the answer columns per task.

What ``score_batch`` and its Dask workers share (``components.inference.parallel_scoring``), so
that neither imports the other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from components.model import tasks

ID_COLUMNS = ["inference_id", "batch_row", "model_version", "model_uri"]
Predict = Callable[[pd.DataFrame], pd.DataFrame]  # raw feature rows -> the pyfunc's prediction columns


def inference_ids(rows: pd.DataFrame, keys: list[str], md5: str) -> np.ndarray:
    """Stable ids for ``rows``, whose index holds their positions in the batch.

    With contract ``keys``: the key values (joined by ``|`` for a compound key), so a late label
    carrying the key joins without a lookup. Without: the first 16 hex digits of the BLAKE2b hash
    of ``"{batch md5}:{row}"``, the same whatever the chunk size, different in every other batch.
    """
    if keys:
        missing = [k for k in keys if k not in rows.columns]
        if missing:
            raise KeyError(f"key column(s) {', '.join(missing)} of the contract are not in the batch")
        parts = [rows[k].astype("str").to_numpy(dtype=object) for k in keys]
        return parts[0] if len(parts) == 1 else np.array(["|".join(row) for row in zip(*parts, strict=True)])
    return np.array(
        [hashlib.blake2b(f"{md5}:{row}".encode(), digest_size=8).hexdigest() for row in rows.index], dtype=object
    )


def prediction_columns(task: str, classes: list[Any]) -> list[str]:
    """The pyfunc's answer columns for ``task`` (binary label, probability; multiclass also proba_<class>;
    regression value)."""
    if tasks.check_task(task) == tasks.REGRESSION:
        return ["value"]
    extra = [tasks.proba_column(c) for c in classes] if task == tasks.MULTICLASS else []
    return ["label", "probability", *extra]


def score_chunk(predict: Predict, rows: pd.DataFrame, ids: np.ndarray, version: str, uri: str) -> pd.DataFrame:
    """``rows`` scored: the id columns, then the model's answer columns, one row per input row."""
    answers = predict(rows)
    head = pd.DataFrame(
        {"inference_id": ids, "batch_row": rows.index.to_numpy(dtype=np.int64), "model_version": version,
         "model_uri": uri},
        index=rows.index,
    )  # fmt: skip
    return pd.concat([head, answers.set_axis(rows.index)], axis=1)
