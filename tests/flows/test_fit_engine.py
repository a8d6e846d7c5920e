"""FitEngine: where the training flow's fits run (a real Dask LocalCluster where one is asked for)."""

import os

import pytest

from components.config import ConfigError, ParallelSettings
from flows import fitting

API = "http://127.0.0.1:9/api"  # handed to the workers only; these tests submit no Prefect task


def _environ() -> dict[str, str]:
    """This process's variables, without Dask's own marker of the process that started a cluster."""
    return {k: v for k, v in os.environ.items() if not k.startswith("__DASK_")}


def test_local_engine_runs_one_fit_at_a_time_in_process():
    from prefect.task_runners import ThreadPoolTaskRunner

    with fitting.FitEngine(ParallelSettings(engine="local")) as engine:
        runner = engine.runner()
    assert isinstance(runner, ThreadPoolTaskRunner) and runner._max_workers == 1


def test_an_existing_scheduler_needs_a_prefect_server(monkeypatch):
    monkeypatch.setattr(fitting, "_api_url", lambda: None)
    with pytest.raises(ConfigError, match=r"train\.parallel\.address.*PREFECT_API_URL"):
        fitting.FitEngine(ParallelSettings(engine="dask", address="tcp://127.0.0.1:8786"))


def test_an_existing_scheduler_needs_more_than_the_temporary_api_mlops_run_started(monkeypatch):
    """`mlops run` points PREFECT_API_URL at its own temporary API: a remote scheduler's workers cannot reach it."""
    monkeypatch.setattr(fitting, "_api_url", lambda: API)
    monkeypatch.setattr(fitting.temporary_api, "url", lambda: API)
    with pytest.raises(ConfigError, match=r"train\.parallel\.address.*PREFECT_API_URL"):
        fitting.FitEngine(ParallelSettings(engine="dask", address="tcp://127.0.0.1:8786"))


def test_an_existing_scheduler_is_used_as_given(monkeypatch):
    monkeypatch.setattr(fitting, "_api_url", lambda: API)
    engine = fitting.FitEngine(ParallelSettings(engine="dask", address="tcp://127.0.0.1:8786"))
    assert engine.runner().address == "tcp://127.0.0.1:8786"
    engine.close()  # nothing of ours to stop


def test_a_cluster_that_cannot_start_is_a_clear_error(monkeypatch):
    import distributed

    def refuse(**kwargs):
        raise OSError("no free port")

    monkeypatch.setattr(fitting, "_api_url", lambda: API)
    monkeypatch.setattr(distributed, "LocalCluster", refuse)
    engine = fitting.FitEngine(ParallelSettings(engine="dask", n_workers=2))
    with pytest.raises(RuntimeError, match="local Dask cluster did not start: no free port"):
        engine.runner()
    engine.close()


@pytest.mark.slow
def test_local_cluster_workers_and_this_process_environment(monkeypatch):
    """Two single-threaded workers without Dask's malloc trimming; this process's variables untouched."""
    from distributed import Client

    monkeypatch.setattr(fitting, "_api_url", lambda: API)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "7")
    before = _environ()

    engine = fitting.FitEngine(ParallelSettings(engine="dask", n_workers=2))
    try:
        address = engine.runner().address
        with Client(address) as client:
            seen = client.run(
                lambda: {k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS", "PREFECT_API_URL")}
            )
            threads = {w["nthreads"] for w in client.scheduler_info()["workers"].values()}
        assert len(seen) == 2 and threads == {1}
        assert all(
            env == {"MALLOC_TRIM_THRESHOLD_": None, "OMP_NUM_THREADS": "1", "PREFECT_API_URL": API}
            for env in seen.values()
        )
        assert _environ() == before  # the nannies' OMP_NUM_THREADS=1 etc. did not leak into this process
    finally:
        engine.close(wait=False)  # the flow goes on while the cluster stops
    engine.close()
    assert engine.local.cluster is None and _environ() == before
    with pytest.raises(OSError), Client(address, timeout="2s"):
        pass
