"""The optional int8 step of a release (``package.quantize``): one body for both flows and the DVC release.

PyTorch dynamic quantization of the chosen CNN or MLP, measured against the float model on the test
split and accepted only within ``package.quantize_max_accuracy_drop``; the report goes on the driver's
parent run and on the version (``quantization.*`` tags).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flows.steps import RunContext

if TYPE_CHECKING:
    import pandas as pd


def quantized(ctx: RunContext, model: Any, test: pd.DataFrame) -> tuple[Any, dict[str, Any] | None, str]:
    """With ``package.quantize``, the chosen torch model (CNN or MLP) marked for int8 if it loses at most
    ``package.quantize_max_accuracy_drop`` accuracy on the test split; (model to log, report, note for the
    summary: empty when quantization is off).

    The marked model keeps its float weights and records the recipe; ``quantize_at_load`` gives the int8
    net that was measured, which is what is assessed, gated and shipped.
    """
    from components.images.quantize import (
        QUANTIZABLE,
        marked_for_quantization,
        quantization_gate,
        quantization_report,
        quantize_dynamic_int8,
    )

    p = ctx.settings.package
    if not p.quantize:
        return model, None, ""
    if model.family not in QUANTIZABLE:
        return model, None, f"quantization skipped: {model.name} ({model.family}) has no torch layers to quantize"
    if ctx.task == "regression":
        return model, None, "quantization skipped: its bound is on accuracy, and this model is a regression"
    X = model.pixels(test) if hasattr(model, "image") else test.drop(columns=[ctx.target])  # read images once
    report = quantization_report(model, quantize_dynamic_int8(model), X, test[ctx.target].to_numpy())
    passed, reason = quantization_gate(report, p.quantize_max_accuracy_drop)
    report |= {"accepted": passed, "reason": reason, "max_accuracy_drop": p.quantize_max_accuracy_drop}
    return (marked_for_quantization(model) if passed else model), report, reason


def record_quantization(report: dict[str, Any] | None) -> None:
    """The quantization report on the driver's parent run (``quantization.json``, ``quantization.*`` tags)."""
    import mlflow

    if report is not None:
        mlflow.log_dict(report, "quantization.json")
        mlflow.set_tags(quantization_tags(report))


def quantization_tags(report: dict[str, Any]) -> dict[str, str]:
    """What a version says about its int8 form: accepted or not and why, the accuracy change, size and latency."""
    keys = ("accuracy_float", "accuracy_quantized", "accuracy_change", "size_ratio",
            "latency_row_seconds_float", "latency_row_seconds_quantized")  # fmt: skip
    return {"quantized": str(report["accepted"]).lower(), "quantization.reason": report["reason"][:500]} | {
        f"quantization.{k}": f"{report[k]:.6g}" for k in keys
    }
