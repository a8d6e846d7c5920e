"""Everything the gate needs about a challenger on the held-out test split, computed once."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.evaluation.metrics import task_metrics
from components.model.tasks import BINARY, MULTICLASS, REGRESSION, check_task, proba_column
from components.model.trained import TrainedModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TestAssessment:
    y_true: np.ndarray  # the encoded target (components.model.tasks.encode_target)
    proba: np.ndarray  # the model's scores for its task: probabilities, or values for regression
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
    """Metrics, slices, behaviour tests and plots (PNG and DVC-plottable data) on the test split,
    for the model's task."""
    from components.evaluation.behaviour import run_behaviour_tests
    from components.evaluation.plots import write_task_plots
    from components.evaluation.slices import slice_metrics

    task = model.task
    n_classes = len(model.classes) if task == MULTICLASS else None
    X = test.drop(columns=[target])
    y = model.encode_target(test[target], what=f"test target '{target}'")
    scores = model.predict_scores(X)
    slices = slice_metrics(
        X,
        y,
        scores,
        slice_columns=slice_columns,
        min_size=min_slice_size,
        threshold=model.threshold,
        bins=bins,
        task=task,
        n_classes=n_classes,
    )
    behaviour = run_behaviour_tests(
        model.predict_scores, X, behaviour_specs, threshold=model.threshold, task=task, classes=model.classes
    )
    files = write_task_plots(
        task, y, scores, threshold=model.threshold, classes=model.classes, slices=slices, out_dir=out_dir / "plots"
    )
    metrics = task_metrics(task, y, scores, threshold=model.threshold, n_classes=n_classes)
    return TestAssessment(y, scores, metrics, slices, behaviour, files)


def champion_scores(
    model_uri: str, test: pd.DataFrame, target: str, *, task: str = BINARY, classes: list[Any] | None = None
) -> np.ndarray:
    """The champion's scores on the same rows through its registered pyfunc, in the challenger's form.

    binary: the ``probability`` column; regression: ``value``; multiclass: the ``proba_<class>`` columns
    in the challenger's ``classes`` order. A class the champion was not trained on gets probability 0
    (it could never answer it); one only the champion knows is left out.
    """
    import mlflow

    from components.model.trained import pyfunc_input

    champion = mlflow.pyfunc.load_model(model_uri)
    frame = champion.predict(pyfunc_input(champion, test.drop(columns=[target])))
    if check_task(task) == BINARY:
        return frame["probability"].to_numpy(dtype=np.float64)
    if task == REGRESSION:
        if "value" not in frame.columns:
            raise ValueError(f"champion {model_uri} answers {list(frame.columns)}, not a regression's 'value'")
        return frame["value"].to_numpy(dtype=np.float64)
    if not classes:
        raise ValueError("champion_scores of a multiclass model needs the challenger's classes")
    lacking = [c for c in classes if proba_column(c) not in frame.columns]
    if len(lacking) == len(classes):
        raise ValueError(f"champion {model_uri} has no probability column of any class ({list(frame.columns)})")
    if lacking:
        log.warning("champion %s was not trained on class(es) %s: their probability counts as 0.0", model_uri, lacking)
    extra = [c for c in frame.columns if c.startswith("proba_") and c not in {proba_column(k) for k in classes}]
    if extra:
        log.warning("champion %s knows class column(s) %s the challenger lacks: left out", model_uri, extra)
    zeros = np.zeros(len(frame))
    columns = [frame[proba_column(c)].to_numpy(dtype=np.float64) if c not in lacking else zeros for c in classes]
    return np.column_stack(columns)
