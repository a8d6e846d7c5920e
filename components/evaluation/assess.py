"""Everything the gate needs about a challenger on the held-out test split, computed once."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.evaluation.metrics import binary_metrics
from components.model.trained import TrainedModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TestAssessment:
    y_true: np.ndarray
    proba: np.ndarray
    metrics: dict[str, float]
    slices: dict[str, dict[str, Any]]
    behaviour: list[Any]
    files: dict[str, Path]


def assess_on_test(
    model: TrainedModel,
    test: pd.DataFrame,
    target: str,
    *,
    slice_columns: list[str],
    min_slice_size: int,
    bins: int,
    behaviour_specs: list[dict[str, Any]],
    out_dir: Path,
) -> TestAssessment:
    """Metrics, slices, behaviour tests and plots (PNG and DVC-plottable data) on the test split."""
    from components.evaluation.behaviour import run_behaviour_tests
    from components.evaluation.plots import write_eval_plots, write_plot_data
    from components.evaluation.slices import slice_metrics

    X = test.drop(columns=[target])
    y = (test[target].to_numpy() == model.classes[1]).astype(int)
    proba = model.predict_proba(X)
    slices = slice_metrics(
        X,
        y,
        proba,
        slice_columns=slice_columns,
        min_size=min_slice_size,
        threshold=model.threshold,
        bins=bins,
    )
    behaviour = run_behaviour_tests(model.predict_proba, X, behaviour_specs, threshold=model.threshold)
    files = write_eval_plots(y, proba, threshold=model.threshold, slices=slices, out_dir=out_dir / "plots")
    files |= {
        f"{k}_data": v
        for k, v in write_plot_data(y, proba, threshold=model.threshold, out_dir=out_dir / "plots").items()
    }
    return TestAssessment(y, proba, binary_metrics(y, proba, model.threshold), slices, behaviour, files)


def champion_proba(model_uri: str, test: pd.DataFrame, target: str) -> np.ndarray:
    """The champion's positive-class probabilities on the same rows, through its registered pyfunc."""
    import mlflow

    from components.model.trained import pyfunc_input

    champion = mlflow.pyfunc.load_model(model_uri)
    features = pyfunc_input(champion, test.drop(columns=[target]))
    return champion.predict(features)["probability"].to_numpy(dtype=np.float64)
