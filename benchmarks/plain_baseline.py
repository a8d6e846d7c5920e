"""The same ML as `mlops run`, with no orchestration: no Prefect, MLflow, GX or BentoML.

Load, the same checks in plain pandas, the same seeded split, the same three models, the same metrics.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from components.config import load_settings
from components.data.dataset import features_and_target, split
from components.evaluation.metrics import choose_best, evaluate
from components.training.families import train_candidate


def main(params_path: str) -> None:
    settings = load_settings(params_path)
    root = Path(params_path).resolve().parent
    frame = pd.read_parquet(root / settings.data.path)
    target = settings.data.target
    assert len(frame) >= settings.validate_.min_rows
    assert not frame.isna().any().any(), "nulls"
    assert frame[target].nunique() == 2, "labels"
    splits = split(frame, target, settings.data.test_size, settings.data.val_size, settings.data.seed)
    X, y = features_and_target(splits.train, target)
    results, models = [], {}
    for name, spec in settings.train.enabled().items():
        models[name] = train_candidate(name, spec.family, spec.model_dump(), X, y, seed=settings.train.seed)
        results.append(evaluate(models[name], splits.val, target, "val"))
    best = choose_best(results, settings.evaluate.primary_metric)
    test = evaluate(models[best.candidate], splits.test, target, "test")
    print(best.candidate, test.metrics)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "params.yaml")
