"""Dask-parallel fits and search trials, and Prefect's per-fit cache, on the real flow.

A real ``LocalCluster`` (2 worker processes, started and stopped by the flow) must give exactly
the metrics of the in-process run. Re-runs reuse cached fits: a change no fit reads (``serve.*``)
trains nothing; a change to one candidate's params re-fits that candidate only.
"""

import shutil

import pytest

from components.release import registry
from tests.conftest import FAST, make_project

pytestmark = pytest.mark.slow
NO_INFRA = [*FAST, "package.infra_validation.enabled=false"]
SEARCH = [*NO_INFRA, "train.search.n_trials=4", "train.search.batch_size=2", "train.candidates.logreg.enabled=false",
          "train.candidates.rf.enabled=false"]  # fmt: skip
SEARCHED = {"hgb", "lgbm", "mlp"}


@pytest.fixture(scope="module")
def dask_and_local(tmp_path_factory, prefect_harness):
    from flows.training import training_pipeline

    project = make_project(tmp_path_factory.mktemp("parallel"))
    params = str(project / "params.yaml")
    on_dask = training_pipeline(params_path=params, overrides=[*SEARCH, "train.parallel.engine=dask"])
    # force: fit again in-process instead of answering from the cache the Dask run filled
    local = training_pipeline(params_path=params, overrides=SEARCH, force=True)
    return project, on_dask, local


def test_dask_cluster_gives_exactly_the_sequential_metrics(dask_and_local):
    _, on_dask, local = dask_and_local
    assert on_dask["notes"][0] == "fits: 12 trained, 0 from Prefect's cache"
    assert local["notes"][0] == "fits: 12 trained, 0 from Prefect's cache"
    assert set(on_dask["candidates"]) == SEARCHED
    assert on_dask["candidates"] == local["candidates"]
    assert on_dask["chosen"] == local["chosen"] and on_dask["test_metrics"] == local["test_metrics"]


def test_every_trial_is_an_mlflow_child_run_of_its_candidate(dask_and_local):
    project, on_dask, _ = dask_and_local
    registry.configure_tracking(project)
    client = registry.client()
    experiment = client.get_experiment_by_name(on_dask["registered_model"]).experiment_id  # one per model
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{on_dask['run_id']}'")
    by_name = {r.info.run_name: r for r in children}
    assert set(by_name) == SEARCHED
    for run in by_name.values():
        trials = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
        assert sorted(int(t.data.tags["trial"]) for t in trials) == [0, 1, 2, 3]
        best = [t for t in trials if t.data.tags["best_trial"] == "true"]
        assert len(best) == 1 and best[0].data.tags["trial"] == run.data.tags["search.best_trial"]
        # the candidate is its best trial: same validation metrics, chosen on validation only
        assert best[0].data.metrics["val_roc_auc"] == run.data.metrics["val_roc_auc"]
        assert max(t.data.metrics["val_roc_auc"] for t in trials) == run.data.metrics["val_roc_auc"]
        assert not any(k.startswith("test_") for t in trials for k in t.data.metrics)


def test_cached_fits_are_reused_and_a_candidate_change_refits_only_that_candidate(tmp_path, prefect_harness):
    from flows.training import training_pipeline

    project = make_project(tmp_path / "cache")
    params = str(project / "params.yaml")
    first = training_pipeline(params_path=params, overrides=NO_INFRA)
    assert first["notes"][0] == "fits: 5 trained, 0 from Prefect's cache"  # ridge is regression-only

    serve_only = training_pipeline(params_path=params, overrides=[*NO_INFRA, "serve.max_batch=500"])
    assert serve_only["skipped"] is False, "serve.max_batch changes the bento, so the run is not skipped"
    assert serve_only["notes"][0] == "fits: 0 trained, 5 from Prefect's cache"
    assert serve_only["candidates"] == first["candidates"]

    # the same inputs (data, params, champion) in a copy with no fit or validation cached: every fit from scratch
    cold = tmp_path / "cold"
    shutil.copytree(project, cold, ignore=shutil.ignore_patterns(".mlops", "runs"))
    changed = [*NO_INFRA, "serve.max_batch=500", "train.candidates.hgb.learning_rate=0.2"]
    one_candidate = training_pipeline(params_path=params, overrides=changed)
    assert one_candidate["notes"][0] == "fits: 1 trained, 4 from Prefect's cache"
    from_scratch = training_pipeline(params_path=str(cold / "params.yaml"), overrides=changed, force=True)
    assert from_scratch["notes"][0] == "fits: 5 trained, 0 from Prefect's cache"
    for key in ("candidates", "chosen", "test_metrics", "decision", "aliases", "version"):
        assert one_candidate[key] == from_scratch[key], key  # cached fits decide as fresh ones do
    # the same data, contract and drift reference (the champion's data is this data) as the run before it
    assert one_candidate["notes"][1].startswith("validation reused"), one_candidate["notes"]
    import mlflow

    logged = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}").list_artifacts(one_candidate["run_id"],
                                                                                     "validation")  # fmt: skip
    assert {"validation/validation_report.html", "validation/validation_report.json"} <= {a.path for a in logged}
    assert one_candidate["candidates"]["logreg"] == first["candidates"]["logreg"]
    assert one_candidate["candidates"]["hgb"] != first["candidates"]["hgb"]

    forced = training_pipeline(params_path=params, overrides=NO_INFRA, force=True)
    assert forced["notes"][0] == "fits: 5 trained, 0 from Prefect's cache"
    assert not any(n.startswith("validation reused") for n in forced["notes"])  # --force validates afresh
    assert forced["candidates"] == first["candidates"]
