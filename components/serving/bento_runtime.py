"""What a running bento knows about itself, for both services (tables and images): its exact tag, and the
per-prediction Prometheus series every dashboard reads by the same names.

Shipped flat beside ``service.py`` and ``image_service.py`` and imported as a top-level module.
"""

from __future__ import annotations

import functools
from pathlib import Path
from types import SimpleNamespace

BATCH_ROWS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def bento_tag(service_file: str) -> str | None:
    """The exact tag of the bento ``service_file`` runs from (``bento.yaml`` sits beside ``src/``)."""
    info = Path(service_file).resolve().parent.parent / "bento.yaml"
    if not info.is_file():
        return None  # served from source, not from a built bento
    import yaml

    data = yaml.safe_load(info.read_text())
    return f"{data['name']}:{data['version']}"


@functools.cache
def prediction_series(task: str, low_confidence: float, value_buckets: tuple[float, ...] = ()) -> SimpleNamespace:
    """Our per-prediction series, created on first use: after BentoML has put the worker in prometheus
    multiprocess mode, so ``/metrics`` aggregates them over all workers. The per-request series
    (rejections, latency) are the gatekeeper's."""
    import prometheus_client as prom  # not at import: its value class is fixed by the mode then

    series = SimpleNamespace(
        batch_rows=prom.Histogram("mlops_model_batch_rows", "Rows per model call", buckets=BATCH_ROWS_BUCKETS)
    )
    if task == "regression":  # no labels to count: the distribution of answers shows drift
        series.values = prom.Histogram(
            "mlops_prediction_value", "Predicted values", ["model_version"], buckets=value_buckets
        )
        return series
    confidence = "max(p, 1-p)" if task == "binary" else "the highest class probability"
    series.predictions = prom.Counter("mlops_predictions", "Predictions served, by label", ["label", "model_version"])
    series.low_confidence = prom.Counter(
        "mlops_low_confidence_predictions", f"Predictions with {confidence} < {low_confidence}", ["model_version"]
    )
    return series
