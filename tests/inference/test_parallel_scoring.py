"""batch.parallel: chunks scored on a real Dask LocalCluster (2 workers) give the local answers, in order,
with a bounded number of chunks out at a time, and a failing chunk is named by its rows."""

from __future__ import annotations

import pickle
import time

import pandas as pd
import pytest

from components.config import ParallelSettings
from components.inference.parallel_scoring import (
    ChunkScorer,
    ChunkScoringError,
    ScoringCluster,
    map_chunks,
    warm_worker,
    where_scored,
    worker_scorer,
)
from components.inference.scoring import inference_ids, score_chunk
from components.local_cluster import BackgroundCluster
from components.release import registry
from components.training.families import train_candidate
from tests.training.task_data import make_frame

LOCAL, DASK = ParallelSettings(engine="local"), ParallelSettings(engine="dask", n_workers=2)
MD5 = "c" * 32
# A LocalCluster's workers import the scoring stack and load the model: a real service, tens of seconds.
ENGINES = ["local", pytest.param("dask", marks=pytest.mark.slow)]


def chunks_of(frame: pd.DataFrame, sizes: list[int]) -> list[pd.DataFrame]:
    """``frame`` cut into consecutive chunks of ``sizes`` rows, indexed by their positions in the batch."""
    out, start = [], 0
    for size in sizes:
        out.append(frame.iloc[start : start + size].set_axis(pd.RangeIndex(start, start + size)))
        start += size
    return out


def slow_square(rows: pd.DataFrame) -> pd.DataFrame:
    """Later chunks finish first (the first sleeps longest), so order must be restored, not assumed."""
    time.sleep(0.3 / (1 + rows.index[0] / 10))
    return rows.assign(y=rows["x"] ** 2)


def fail_on_row_50(rows: pd.DataFrame) -> pd.DataFrame:
    if 50 in rows.index:
        raise ValueError("could not convert 'n/a!' to float")
    return rows


def on(engine: str, request: pytest.FixtureRequest) -> tuple[ParallelSettings, ScoringCluster | None]:
    """The settings for ``engine`` and, for Dask, the module's cluster (started only when a test needs it)."""
    return (LOCAL, None) if engine == "local" else (DASK, request.getfixturevalue("cluster"))


@pytest.fixture(scope="module")
def cluster():
    with ScoringCluster(DASK) as started:
        started.address()  # up before the first test's clock starts
        yield started


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    """A multiclass model registered in a real SQLite store: (uri, the model, a batch of 230 raw rows)."""
    import mlflow

    root = tmp_path_factory.mktemp("store")
    registry.configure_tracking(root, experiment="tests")
    train = make_frame("multiclass", 300, 0)
    model = train_candidate("hgb", "sklearn_hgb", {"learning_rate": 0.2, "max_iter": 20, "max_leaf_nodes": 8},
                            train.drop(columns="target"), train["target"], seed=0, task="multiclass")  # fmt: skip
    with mlflow.start_run() as run:
        uri = registry.log_model(model, train.drop(columns="target"))
    version = registry.register(uri, "toy", run.info.run_id, {}).version
    batch = make_frame("multiclass", 230, 1).drop(columns="target")
    return f"models:/toy/{version}", model, batch


@pytest.mark.slow
def test_dask_scores_equal_local_scores_and_one_shot_scoring(cluster, champion):
    uri, model, batch = champion
    scorer = ChunkScorer.for_model(uri, "1", "multiclass", MD5, predict=model.predict_frame)
    chunks = chunks_of(batch, [64, 64, 64, 38])

    local = pd.concat(map_chunks(scorer, iter(chunks), LOCAL))
    on_dask = pd.concat(map_chunks(scorer, iter(chunks), DASK, cluster=cluster))

    pd.testing.assert_frame_equal(on_dask, local)
    batch.index = pd.RangeIndex(0, len(batch))
    one_shot = score_chunk(model.predict_frame, batch, inference_ids(batch, [], MD5), "1", uri)
    pd.testing.assert_frame_equal(local, one_shot)
    assert list(on_dask.columns[:4]) == ["inference_id", "batch_row", "model_version", "model_uri"]
    assert {"label", "probability", "proba_high", "proba_low", "proba_mid"} <= set(on_dask.columns)


def test_the_scorer_travels_without_its_model(champion):
    uri, model, _ = champion
    scorer = ChunkScorer.for_model(uri, "1", "multiclass", MD5, keys=["id"], predict=model.predict_frame)
    copy = pickle.loads(pickle.dumps(scorer))
    assert copy.predict is None and copy == scorer  # everything but the loaded model
    assert len(pickle.dumps(scorer)) < 1000
    # where there is no loaded model, the version is loaded once by URI and kept
    assert worker_scorer(uri, "multiclass", copy.tracking_uri, copy.registry_uri) is worker_scorer(
        uri, "multiclass", copy.tracking_uri, copy.registry_uri
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_order_is_kept_and_chunks_in_flight_are_bounded(engine, request):
    frame = pd.DataFrame({"x": range(100)})
    chunks, pulled, out_at_yield = chunks_of(frame, [10] * 10), [], []

    def reader():
        for chunk in chunks:
            pulled.append(len(pulled))
            yield chunk

    parallel, cluster = on(engine, request)
    results = []
    for result in map_chunks(slow_square, reader(), parallel, cluster=cluster, in_flight=3):
        out_at_yield.append(len(pulled) - len(results))  # chunks read and not yet handed back
        results.append(result)

    pd.testing.assert_frame_equal(pd.concat(results), frame.assign(y=frame["x"] ** 2))
    assert max(out_at_yield) <= (1 if engine == "local" else 3)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_failing_chunk_is_named_by_its_rows(engine, request):
    frame = pd.DataFrame({"x": range(100)})
    parallel, cluster = on(engine, request)
    with pytest.raises(ChunkScoringError) as caught:
        list(map_chunks(fail_on_row_50, iter(chunks_of(frame, [20] * 5)), parallel, cluster=cluster))
    assert str(caught.value) == (
        "scoring chunk 3 (rows 40-59) of the batch failed: ValueError: could not convert 'n/a!' to float"
    )
    assert isinstance(caught.value.__cause__, ValueError)


def test_a_local_engine_needs_no_cluster():
    with ScoringCluster(LOCAL) as none, pytest.raises(ValueError, match="local"):
        none.address()


def test_a_scoring_cluster_that_cannot_start_names_the_setting(monkeypatch):
    import distributed

    def refuse(**kwargs):
        raise OSError("no free port")

    monkeypatch.setattr(distributed, "LocalCluster", refuse)
    with ScoringCluster(DASK) as broken, pytest.raises(RuntimeError, match=r"^batch\.parallel: .* no free port"):
        broken.address()


def test_where_chunks_were_scored_is_recorded():
    assert where_scored(LOCAL) == {"engine": "local"}
    assert where_scored(DASK) == {"engine": "dask", "n_workers": 2}
    remote = ParallelSettings(engine="dask", address="tcp://10.0.0.5:8786")
    assert where_scored(remote) == {"engine": "dask", "address": "tcp://10.0.0.5:8786"}
    assert ScoringCluster(remote).address() == "tcp://10.0.0.5:8786"  # the user's cluster: nothing started


@pytest.mark.slow
def test_a_background_cluster_starts_and_leaves_no_process_when_closed():
    """Worker processes with the given variables; closed, none of them is left running, nor any variable here."""
    import os

    import psutil
    from distributed import Client

    before = {k: v for k, v in os.environ.items() if not k.startswith("__DASK_")}
    cluster = BackgroundCluster(2, env={"MLOPS_PROBE": "scoring"}, warm=warm_worker, what="batch.parallel")
    address = cluster.address()
    with Client(address) as client:
        seen = client.run(lambda: (os.getpid(), os.environ.get("MLOPS_PROBE")))
    assert len(seen) == 2 and all(probe == "scoring" for _, probe in seen.values())
    workers = [psutil.Process(pid) for pid, _ in seen.values()]
    assert all(w.ppid() == os.getpid() and w.is_running() for w in workers)  # processes of this one's nannies
    cluster.close()
    cluster.close()  # again: a no-op
    assert cluster.cluster is None
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    assert {k: v for k, v in os.environ.items() if not k.startswith("__DASK_")} == before
    with pytest.raises(OSError), Client(address, timeout="2s"):
        pass
