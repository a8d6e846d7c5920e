"""What the service answers, per task: the JSON body, its OpenAPI description, the model's arrays.

Shipped inside each bento beside ``service.py`` as a top-level module; it imports nothing from
its neighbours (nor from ``components.model``, which is not importable before the model loads),
so it loads the same way from the bento and from the project (``components.serving.answers``).

One prediction per record, always with ``model_version``:

- ``binary``: ``label``, ``probability`` (of the positive class), ``probabilities`` {class: p};
- ``multiclass``: ``label``, ``probability`` (of that label), ``probabilities`` {class: p};
- ``regression``: ``value``.

``probabilities`` is keyed by ``str(class)``: JSON keys are strings, and the pyfunc's
``proba_<class>`` columns name the classes the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, create_model

BINARY, MULTICLASS, REGRESSION = "binary", "multiclass", "regression"  # as components.model.tasks
TASKS = (BINARY, MULTICLASS, REGRESSION)
# Histogram buckets when the bento was built without the training target's quantiles.
DEFAULT_VALUE_BUCKETS = (-1e6, -1e4, -1e2, -1.0, 0.0, 1.0, 1e2, 1e4, 1e6)


def _native(value: Any) -> Any:
    """numpy scalars (a label from an object array) as the Python values JSON knows."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# json.dumps builds an encoder per call; ``default`` is only consulted for types JSON lacks,
# so plain values are written exactly as json.dumps writes them.
_ENCODE = json.JSONEncoder(ensure_ascii=False, default=_native).encode


def check_task(task: str, classes: Sequence[Any] | None) -> list[Any]:
    """The class list the service needs for ``task`` (errors name the bento config key)."""
    if task not in TASKS:
        raise ValueError(f"bento_config.json task: {task!r} is not one of {', '.join(TASKS)}")
    classes = list(classes or [])
    if task == BINARY and len(classes) != 2:
        raise ValueError(f"bento_config.json classes: a binary model needs [negative, positive], got {classes!r}")
    if task == MULTICLASS and len(classes) < 3:
        raise ValueError(f"bento_config.json classes: a multiclass model needs 3 or more classes, got {classes!r}")
    if task == REGRESSION and classes:
        raise ValueError(f"bento_config.json classes: a regression model has no classes, got {classes!r}")
    if len({str(c) for c in classes}) != len(classes):
        raise ValueError(f"bento_config.json classes: two classes share a name as text: {classes!r}")
    return classes


def response_models(task: str, classes: Sequence[Any]) -> tuple[type[BaseModel], type[BaseModel]]:
    """``(Prediction, Predictions)`` pydantic models describing the task's answer (for OpenAPI)."""
    version = (str, Field(description="the registered model version that answered"))
    if task == REGRESSION:
        value = (float, Field(description="the predicted value"))
        prediction = create_model("Prediction", value=value, model_version=version)
    else:
        names = [str(c) for c in classes]
        # One property per class, so the schema names them; aliases because a class name need not
        # be a Python identifier ("<=50K", "0").
        per_class = {
            f"class_{i}": (float, Field(alias=name, description=f"probability of class {name!r}"))
            for i, name in enumerate(names)
        }
        probabilities = create_model(
            "Probabilities", __config__=ConfigDict(populate_by_name=True, serialize_by_alias=True), **per_class
        )
        of = f"of the positive class {names[1]!r}" if task == BINARY else "of the predicted label"
        # an enum of the classes where JSON Schema can say it (Literal takes no floats)
        literal = all(type(c) in (int, str, bool) for c in classes)
        prediction = create_model(
            "Prediction",
            label=(Literal[tuple(classes)] if literal else Any, Field(description=f"the predicted class: {names}")),
            probability=(float, Field(description=f"probability {of}")),
            probabilities=(probabilities, Field(description="probability of every class, keyed by class name")),
            model_version=version,
        )
    predictions = create_model("Predictions", predictions=(list[prediction], ...))
    return prediction, predictions


def low_confidence_count(task: str, scores: np.ndarray, threshold: float) -> int:
    """Rows whose most likely class is below ``threshold`` (binary: max(p, 1-p)); 0 for regression."""
    if task == BINARY:
        return int(np.count_nonzero(np.maximum(scores, 1.0 - scores) < threshold))
    if task == MULTICLASS:
        return int(np.count_nonzero(scores.max(axis=1) < threshold))
    return 0


def observe_values(histogram: Any, values: np.ndarray) -> None:
    """``histogram.observe`` for every value, in one pass per bucket instead of one call per row.

    prometheus_client has no bulk observe; a big batch would pay one locked write per value.
    NaN is skipped (it would poison the sum for good).
    """
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    bounds, buckets, total = (getattr(histogram, k, None) for k in ("_upper_bounds", "_buckets", "_sum"))
    if bounds is None or buckets is None or total is None:  # another client version: the public way
        for value in values.tolist():
            histogram.observe(value)
        return
    # observe() puts a value in the first bucket whose bound is >= it: searchsorted "left"
    counts = np.bincount(np.searchsorted(np.asarray(bounds, dtype=np.float64), values, side="left"),
                         minlength=len(bounds))  # fmt: skip
    for bucket, count in zip(buckets, counts.tolist(), strict=False):
        if count:
            bucket.inc(count)
    if len(values):
        total.inc(float(values.sum()))


class AnswerWriter:
    """Writes ``{"predictions": [...]}`` for one task, byte for byte what ``json.dumps`` would,
    at several times its speed for large batches (only the numbers vary from row to row)."""

    def __init__(self, task: str, classes: Sequence[Any], version: str) -> None:
        self.task, self.classes, self.version = task, check_task(task, classes), version
        self.names = [str(c) for c in self.classes]
        self.index = {c: i for i, c in enumerate(self.classes)}
        self._tail = f', "model_version": {_ENCODE(version)}}}'
        self._keys = [f"{_ENCODE(name)}: " for name in self.names]
        if task == BINARY:  # '{"label": L, "probability": p, "probabilities": {"neg": 1-p, "pos": p}, ...}'
            self._neg, self._pos = f', "probabilities": {{{self._keys[0]}', f", {self._keys[1]}"

    def __call__(self, answers: np.ndarray | list[Any], scores: np.ndarray) -> str:
        """The body for one request: ``answers`` are labels (an array or its ``tolist()``) or values."""
        if self.task == REGRESSION:
            return self._regression(np.asarray(answers, dtype=np.float64))
        labels = answers if isinstance(answers, list) else answers.tolist()
        return self._classes(labels, np.asarray(scores, dtype=np.float64))

    def records(self, answers: np.ndarray | list[Any], scores: np.ndarray) -> list[dict[str, Any]]:
        """The predictions as plain dicts (the slow, obviously right way; NaN stays NaN)."""
        if self.task == REGRESSION:
            values = np.asarray(answers, dtype=np.float64).tolist()
            return [{"value": x, "model_version": self.version} for x in values]
        labels = answers if isinstance(answers, list) else answers.tolist()
        scores = np.asarray(scores, dtype=np.float64)
        table = self._table(scores)
        own = self._label_probability(labels, table, scores)
        return [
            {"label": y, "probability": p, "probabilities": dict(zip(self.names, row, strict=True)),
             "model_version": self.version}
            for y, p, row in zip(labels, own.tolist(), table.tolist(), strict=True)
        ]  # fmt: skip

    def _table(self, scores: np.ndarray) -> np.ndarray:
        """Scores as (n, k) probabilities in class order (binary: [1 - p, p])."""
        return np.column_stack([1.0 - scores, scores]) if self.task == BINARY else scores

    def _label_probability(self, labels: list[Any], table: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if self.task == BINARY:
            return scores  # of the positive class, as the binary answer always said
        try:
            column = np.fromiter((self.index[y] for y in labels), dtype=np.int64, count=len(labels))
        except KeyError as err:
            raise ValueError(f"the model answered label {err.args[0]!r}, not one of the classes {self.names}") from None
        return table[np.arange(len(labels)), column]

    def _regression(self, values: np.ndarray) -> str:
        if not np.isfinite(values).all():  # repr() would write nan, not the NaN json.dumps writes
            return _ENCODE({"predictions": self.records(values, values)})
        head, tail = '{"value": ', self._tail
        return '{"predictions": [' + ", ".join([f"{head}{x!r}{tail}" for x in values.tolist()]) + "]}"

    def _classes(self, labels: list[Any], scores: np.ndarray) -> str:
        if not np.isfinite(scores).all():  # repr() would write nan, not the NaN json.dumps writes
            return _ENCODE({"predictions": self.records(labels, scores)})
        head = {y: f'{{"label": {_ENCODE(y)}, "probability": ' for y in set(labels)}
        tail = "}" + self._tail
        if self.task == BINARY:  # the common case, kept tight: two numbers per row
            neg, pos = self._neg, self._pos
            positive, negative = map(repr, scores.tolist()), map(repr, (1.0 - scores).tolist())
            rows = [f"{head[y]}{p}{neg}{q}{pos}{p}{tail}" for y, p, q in zip(labels, positive, negative, strict=True)]
        else:
            keys, own, rows = self._keys, self._label_probability(labels, scores, scores).tolist(), []
            for y, p, xs in zip(labels, own, scores.tolist(), strict=True):
                probabilities = ", ".join([f"{k}{x!r}" for k, x in zip(keys, xs, strict=True)])
                rows.append(f'{head[y]}{p!r}, "probabilities": {{{probabilities}{tail}')
        return '{"predictions": [' + ", ".join(rows) + "]}"


def arrays_from_frame(task: str, classes: Sequence[Any]) -> Callable[[pd.DataFrame], tuple[np.ndarray, np.ndarray]]:
    """``pyfunc output frame -> (answers, scores)``: the frame's ``label`` and ``probability``
    (binary), ``label`` and ``proba_<class>`` columns (multiclass) or ``value`` (regression)."""

    def binary(out: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return out["label"].to_numpy(), out["probability"].to_numpy(dtype=np.float64)

    def multiclass(out: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        columns = [f"proba_{c}" for c in classes]
        missing = [c for c in columns if c not in out.columns]
        if missing:
            raise KeyError(f"the model's output lacks the columns {missing} (it has {list(out.columns)})")
        return out["label"].to_numpy(), out[columns].to_numpy(dtype=np.float64)

    def regression(out: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        values = out["value"].to_numpy(dtype=np.float64)
        return values, values

    return {BINARY: binary, MULTICLASS: multiclass, REGRESSION: regression}[task]
