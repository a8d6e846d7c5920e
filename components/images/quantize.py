"""Dynamic int8 quantization of the torch models, what it costs in accuracy, and whether to accept it.

``quantize_dynamic_int8`` works on the image CNN (an ``ImageModel`` of family ``torch_cnn``) and on the
tabular MLP (a ``TrainedModel`` of family ``torch_mlp``) and returns a new model of the same kind; the
input is left as it was. ``quantization_report`` measures both models on the same rows, and
``quantization_gate`` accepts the quantized one only if it loses at most a bound of accuracy.

How a quantized model is stored: ``torch.load(weights_only=True)`` does read a dynamically quantized
``state_dict`` back (torch 2.13: its packed int8 weights are quantized tensors in a tuple, both on the
allow-list), but only into a net already quantized the same way, safetensors cannot hold it, and
``torch.ao.quantization`` is deprecated. So the model files keep the float weights and the
``QUANTIZATION_RECIPE`` (``marked_for_quantization``: key ``quantization`` of ``fit`` on an ImageModel,
``extra`` on a TrainedModel), and ``quantize_at_load`` applies it after loading: dynamic quantization
is a function of the weights alone, so this rebuilds the very same int8 net.
"""

from __future__ import annotations

import dataclasses
import io
import statistics
import time
import warnings
from typing import Any

import numpy as np

QUANTIZATION_KEY = "quantization"
QUANTIZATION_RECIPE = {"scheme": "dynamic_int8", "modules": ["Linear"]}
QUANTIZABLE = ("torch_cnn", "torch_mlp")
SINGLE_ROWS = 20  # rows timed one at a time per repeat, for the per-row latency


def _record_field(model: Any) -> str:
    """Where a model keeps plain facts about itself: ``fit`` on an ImageModel, ``extra`` on a TrainedModel."""
    return "fit" if hasattr(model, "image") else "extra"


def _quantized_net(net: Any) -> Any:
    import torch
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        # torch.ao.quantization warns that it is deprecated in favour of torchao (not installed here);
        # the eager API still works in torch 2.13 and the weights are all we depend on (see quantize_at_load).
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        # Only Linear layers: dynamic quantization stores their weights as int8 and quantizes each
        # batch's activations on the fly. Convolutions have no dynamic kernel, so the CNN's conv layers
        # stay float; on the digits CNN the Linear head holds half the weights and most of the bytes.
        # inplace=False: quantize_dynamic deep-copies, so the input net is untouched.
        return quantize_dynamic(net, {torch.nn.Linear}, dtype=torch.qint8, inplace=False).eval()


def is_quantized(model: Any) -> bool:
    """Whether ``model``'s net holds int8 layers (a recorded recipe alone, on float weights, is not enough)."""
    return any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in model.estimator.modules())


def quantize_dynamic_int8(model: Any) -> Any:
    """A copy of ``model`` (torch_cnn ImageModel or torch_mlp TrainedModel) whose Linear layers are int8,
    recording ``QUANTIZATION_RECIPE`` under ``quantization``; ``model`` itself is left as it was."""
    if getattr(model, "family", None) not in QUANTIZABLE:
        raise ValueError(f"model {getattr(model, 'name', '?')!r} of family {getattr(model, 'family', None)!r}: "
                         f"dynamic int8 quantization applies to {', '.join(QUANTIZABLE)} only")  # fmt: skip
    if is_quantized(model):
        raise ValueError(f"model {model.name!r} is already quantized")
    field = _record_field(model)
    record = {**(getattr(model, field) or {}), QUANTIZATION_KEY: dict(QUANTIZATION_RECIPE)}
    return dataclasses.replace(model, estimator=_quantized_net(model.estimator), **{field: record})


def marked_for_quantization(float_model: Any) -> Any:
    """What the model files store for a quantized model: the float weights, recording the recipe that
    ``quantize_at_load`` applies. A quantized state_dict loads only into a net quantized alike (see the
    module docstring), so the existing pickle-free savers keep working unchanged."""
    if is_quantized(float_model):
        raise ValueError(f"model {float_model.name!r}: mark the float model, not the quantized one")
    field = _record_field(float_model)
    record = {**(getattr(float_model, field) or {}), QUANTIZATION_KEY: dict(QUANTIZATION_RECIPE)}
    return dataclasses.replace(float_model, **{field: record})


def quantize_at_load(model: Any) -> Any:
    """``model`` as loaded from its files: quantized if it records the recipe on float weights, else as it is.
    Dynamic quantization depends on the weights alone, so this rebuilds the int8 net that was measured."""
    recipe = (getattr(model, _record_field(model)) or {}).get(QUANTIZATION_KEY)
    if recipe is None or is_quantized(model):
        return model
    if recipe != QUANTIZATION_RECIPE:
        raise ValueError(f"model {model.name!r}: unknown quantization recipe {recipe!r}; "
                         f"this code applies {QUANTIZATION_RECIPE!r}")  # fmt: skip
    return quantize_dynamic_int8(model)


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
