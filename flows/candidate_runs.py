"""A candidate's record in MLflow: one child run of the pipeline run (params, validation metrics, the model as a
pyfunc), and one grandchild per search trial. The Prefect flow runs it as a named task per candidate, the DVC
release stage as a plain call; MLflow is imported inside, as in the release steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from components import vocabulary as v
from components.release import registry

if TYPE_CHECKING:
    import pandas as pd

    from components.training.search import CandidateOutcome


def log_candidate(parent_run_id: str, outcome: CandidateOutcome, example: pd.DataFrame) -> tuple[str, str]:
    """One child run per candidate (params, validation metrics, the model), one grandchild per search trial."""
    import mlflow

    model, val = outcome.model, outcome.result
    with mlflow.start_run(run_name=model.name, parent_run_id=parent_run_id, nested=True) as child:
        mlflow.set_tag(v.TAG_CANDIDATE, model.name)
        mlflow.log_params({"family": model.family, **model.params})
        mlflow.log_metrics({f"val_{k}": x for k, x in val.metrics.items()})
        if outcome.search is not None:
            _log_trials(child.info.run_id, outcome)
        return child.info.run_id, _log_model(model, example)


def _log_model(model: Any, example: pd.DataFrame) -> str:
    """The model as a pyfunc in the active run: the tabular one, or the image one (it reads files and bytes)."""
    if hasattr(model, "image"):  # an ImageModel (components.images)
        from components.images.pyfunc import log_image_model

        return log_image_model(model, example)
    return registry.log_model(model, example)


def _log_trials(candidate_run_id: str, outcome: CandidateOutcome) -> None:
    import mlflow

    search = outcome.search
    mlflow.log_dict(search.to_dict(), "search.json")
    mlflow.set_tags({"search.best_trial": str(search.best_number), "search.n_trials": str(len(search.trials))})
    for trial in search.trials:
        with mlflow.start_run(run_name=f"{search.candidate}-trial-{trial.number}", parent_run_id=candidate_run_id,
                              nested=True):  # fmt: skip
            mlflow.set_tags({v.TAG_CANDIDATE: search.candidate, "trial": str(trial.number), "trial_state": trial.state})
            mlflow.set_tag("best_trial", str(trial.number == search.best_number).lower())
            mlflow.log_params(trial.params)
            if trial.reason:
                mlflow.set_tag("failure", trial.reason[:500])
            if trial.number in (outcome.trial_results or {}):
                mlflow.log_metrics({f"val_{k}": x for k, x in outcome.trial_results[trial.number].metrics.items()})
