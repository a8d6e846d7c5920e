"""What dynamic int8 quantization costs a torch model in accuracy, size and latency, and whether to accept it.

``quantization_report`` measures the float and the quantized model on the same rows (images or a feature
frame), and ``quantization_gate`` accepts the quantized one only if it loses at most a bound of accuracy.
Making the int8 net and rebuilding it at load are ``components.model.quantization`` (it ships inside every
model), re-exported here.
"""

from __future__ import annotations

import io
import statistics
import time
import warnings
from typing import Any

import numpy as np

from components.model.quantization import (  # noqa: F401 (re-exported: one place to quantize from)
    QUANTIZABLE,
    QUANTIZATION_KEY,
    QUANTIZATION_RECIPE,
    is_quantized,
    marked_for_quantization,
    quantize_at_load,
    quantize_dynamic_int8,
)

SINGLE_ROWS = 20  # rows timed one at a time per repeat, for the per-row latency


def state_dict_bytes(model: Any) -> int:
    """Size of the net's serialized ``state_dict`` (torch.save to memory): what the weights weigh on disk."""
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # TypedStorage notices on quantized tensors
        torch.save(model.estimator.state_dict(), buffer)
    return len(buffer.getvalue())


def _scores(model: Any, X: Any) -> np.ndarray:
    """What a served call computes: from raw input (images or a feature frame) to class scores."""
    return np.asarray(model.predict_scores(X), dtype=np.float64)


def _accuracy(model: Any, X: Any, y_true: np.ndarray) -> tuple[float, np.ndarray]:
    scores = _scores(model, X)
    if scores.ndim == 2:
        predicted = np.argmax(scores, axis=1)
    else:  # binary: P(classes[1]) against the model's threshold
        predicted = (scores >= getattr(model, "threshold", 0.5)).astype(np.int64)
    return float(np.mean(predicted == y_true)), predicted


def _rows(X: Any, start: int, stop: int) -> Any:
    return X.iloc[start:stop] if hasattr(X, "iloc") else X[start:stop]


def _median_seconds(models: dict[str, Any], X: Any, repeats: int, single_rows: int) -> dict[str, dict[str, float]]:
    """Median seconds per whole batch and per single row, each model timed in turn within every repeat,
    so drift in a shared machine's load falls on both alike."""
    n_single = min(single_rows, len(X))
    singles = [_rows(X, i, i + 1) for i in range(n_single)]
    for model in models.values():  # warm-up: first calls pay for lazy imports and allocations
        _scores(model, X)
    batch: dict[str, list[float]] = {k: [] for k in models}
    single: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(repeats):
        for key, model in models.items():
            start = time.perf_counter()
            _scores(model, X)
            batch[key].append(time.perf_counter() - start)
            for row in singles:
                start = time.perf_counter()
                _scores(model, row)
                single[key].append(time.perf_counter() - start)
    return {
        key: {"batch_seconds": statistics.median(batch[key]), "row_seconds": statistics.median(single[key])}
        for key in models
    }


def quantization_report(
    float_model: Any, quantized_model: Any, X: Any, y: Any, *, repeats: int = 5, single_rows: int = SINGLE_ROWS
) -> dict[str, Any]:
    """Both models on the same rows ``X`` (images or a feature frame) with labels ``y``: accuracy and its
    change, prediction agreement, state_dict size in bytes, and median latency per batch (all of ``X``)
    and per single row (the first ``single_rows``, one call each), over ``repeats`` timed rounds.

    Latencies are measured with ``time.perf_counter`` and returned as data; on a shared machine they are
    noisy, so they inform the record and never decide anything here.
    """
    if repeats < 1 or single_rows < 1:
        raise ValueError(f"repeats and single_rows must be at least 1, got {repeats} and {single_rows}")
    if getattr(float_model, "task", None) == "regression":
        raise ValueError(f"model {float_model.name!r} is a regression: the quantization gate compares accuracy")
    if list(float_model.classes) != list(quantized_model.classes):
        raise ValueError("the float and quantized models have different classes")
    y_true = float_model.encode_target(y)
    if len(y_true) == 0:
        raise ValueError("quantization_report needs at least one row")
    accuracy_float, pred_float = _accuracy(float_model, X, y_true)
    accuracy_quantized, pred_quantized = _accuracy(quantized_model, X, y_true)
    times = _median_seconds({"float": float_model, "quantized": quantized_model}, X, repeats, single_rows)
    size_float, size_quantized = state_dict_bytes(float_model), state_dict_bytes(quantized_model)
    return {
        "metric": "accuracy",
        "n_rows": len(y_true),
        "accuracy_float": accuracy_float,
        "accuracy_quantized": accuracy_quantized,
        "accuracy_change": accuracy_quantized - accuracy_float,
        "agreement": float(np.mean(pred_float == pred_quantized)),
        "size_bytes_float": size_float,
        "size_bytes_quantized": size_quantized,
        "size_ratio": size_quantized / size_float,
        "batch_rows": len(y_true),
        "latency_batch_seconds_float": times["float"]["batch_seconds"],
        "latency_batch_seconds_quantized": times["quantized"]["batch_seconds"],
        "latency_row_seconds_float": times["float"]["row_seconds"],
        "latency_row_seconds_quantized": times["quantized"]["row_seconds"],
        "repeats": repeats,
        "recipe": dict(QUANTIZATION_RECIPE),
    }


def quantization_gate(report: dict[str, Any], max_accuracy_drop: float) -> tuple[bool, str]:
    """Accept the quantized model only if it loses at most ``max_accuracy_drop`` accuracy (a share: 0.01 is
    one point); the reason states both accuracies, the drop and the bound."""
    if not max_accuracy_drop >= 0:
        raise ValueError(f"max_accuracy_drop must be a number >= 0, got {max_accuracy_drop!r}")
    before, after = report["accuracy_float"], report["accuracy_quantized"]
    drop = before - after
    passed = drop <= max_accuracy_drop + 1e-12  # a drop equal to the bound passes, whatever the rounding
    verdict = "accepted" if passed else "refused"
    relation = "within" if passed else "beyond"
    return passed, (
        f"quantized model {verdict}: accuracy {after:.4f} quantized vs {before:.4f} float "
        f"(drop {drop:+.4f}, {relation} the bound {max_accuracy_drop:g}); "
        f"size {report['size_bytes_quantized']:,} vs {report['size_bytes_float']:,} bytes"
    )
