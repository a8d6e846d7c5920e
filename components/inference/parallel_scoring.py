"""Scoring a batch's chunks where ``batch.parallel`` says: in this process, or on a Dask cluster.

:func:`map_chunks` applies a function to each chunk of an iterator and yields the results in the
chunks' order, whatever the engine. At most ``in_flight`` chunks are out at a time, so memory
holds a bounded number of chunks whatever the file size; the iterator is read only as results are
taken. An exception in a chunk is raised as :class:`ChunkScoringError` naming its rows.

On Dask the function is sent to each worker once, not with every chunk, and :class:`ChunkScorer`
carries no model: each worker process loads the version from its ``models:/`` URI the first time,
through the same :func:`components.inference.champion.load_scorer` as a local scoring, and keeps
it. So the answers are the local ones, row for row.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from components.config import ParallelSettings
from components.local_cluster import BackgroundCluster

if TYPE_CHECKING:
    import pandas as pd

    from components.inference.scoring import Predict

R = TypeVar("R")


class ChunkScoringError(RuntimeError):
    """A chunk failed to score; the message names its rows in the batch and the original error."""


def describe_chunk(chunk: Any, number: int) -> str:
    """``chunk 3 (rows 500000-749999)``: a chunk's rows are its index, the positions in the batch."""
    index = getattr(chunk, "index", None)
    if index is None or len(index) == 0:
        return f"chunk {number}"
    return f"chunk {number} (rows {index[0]}-{index[-1]})"


def _failed(where: str, err: BaseException) -> ChunkScoringError:
    return ChunkScoringError(f"scoring {where} of the batch failed: {type(err).__name__}: {err}")


# --- the model on a worker ------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def worker_scorer(uri: str, task: str, tracking_uri: str | None, registry_uri: str | None) -> Predict:
    """The scorer of ``uri`` in this process, loaded once (a Dask worker keeps it for every later chunk)."""
    import mlflow

    from components.inference.champion import Champion, load_scorer

    if tracking_uri:  # a worker may have started before this process pointed MLflow at the project's store
        mlflow.set_tracking_uri(tracking_uri)
    if registry_uri:
        mlflow.set_registry_uri(registry_uri)
    version = Champion(name="", version="", alias="", uri=uri, run_id=None, model_run_id=None, dataset_md5=None,
                       dataset_path=None, task=task)  # fmt: skip
    return load_scorer(version)[0]


@dataclass(frozen=True)
class ChunkScorer:
    """Scores a chunk of validated rows as ``score_batch`` does: inference ids, then the model's answer.

    ``predict`` (the scorer already loaded in this process) is used where it is set and never
    pickled: on a Dask worker the model comes from ``uri`` instead, loaded once per worker.
    """

    uri: str  # models:/<name>/<version>
    version: str
    task: str
    md5: str  # the batch's: ids of a contract without keys are built from it
    keys: tuple[str, ...] = ()
    tracking_uri: str | None = None
    registry_uri: str | None = None
    predict: Predict | None = field(default=None, compare=False, repr=False)

    @classmethod
    def for_model(cls, uri: str, version: str, task: str, md5: str, keys: Iterable[str] = (),
                  predict: Predict | None = None) -> ChunkScorer:  # fmt: skip
        """A scorer whose workers load ``uri`` from the MLflow store this process uses now."""
        import mlflow

        return cls(uri=uri, version=str(version), task=task, md5=md5, keys=tuple(keys),
                   tracking_uri=mlflow.get_tracking_uri(), registry_uri=mlflow.get_registry_uri(),
                   predict=predict)  # fmt: skip

    def __getstate__(self) -> dict[str, Any]:
        # Unpickled without it, ``predict`` reads the class default (None): the worker loads by URI.
        return {k: v for k, v in self.__dict__.items() if k != "predict"}

    def __call__(self, rows: pd.DataFrame) -> pd.DataFrame:
        from components.inference.scoring import inference_ids, score_chunk

        predict = self.predict or worker_scorer(self.uri, self.task, self.tracking_uri, self.registry_uri)
        return score_chunk(predict, rows, inference_ids(rows, list(self.keys), self.md5), self.version, self.uri)


# --- where chunks run -------------------------------------------------------------------


class ScoringCluster:
    """The Dask cluster ``batch.parallel`` names: its ``address``, or a LocalCluster of ``n_workers``.

    The LocalCluster (``components.local_cluster``, as training's: worker processes on 127.0.0.1,
    one thread each, this process's environment restored) starts in the background as soon as
    this is made, its workers importing the scoring stack, and is stopped by :meth:`close`.
    Scoring workers do not talk to Prefect, so no Prefect API is needed here.
    """

    def __init__(self, parallel: ParallelSettings) -> None:
        self.parallel = parallel
        self.local: BackgroundCluster | None = None
        if parallel.engine == "dask" and not parallel.address:
            self.local = BackgroundCluster(parallel.n_workers, warm=warm_worker, what="batch.parallel")

    def address(self) -> str:
        """The scheduler's address (waits for a LocalCluster to be up)."""
        if self.parallel.address:
            return self.parallel.address
        if self.local is None:
            raise ValueError("batch.parallel.engine is local: there is no Dask cluster")
        return self.local.address()

    def close(self, wait: bool = True) -> None:
        """Stop the LocalCluster (if one was started), in the background unless ``wait``."""
        if self.local is not None:
            self.local.close(wait=wait)

    def __enter__(self) -> ScoringCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def where_scored(parallel: ParallelSettings) -> dict[str, Any]:
    """What the metadata records of where chunks were scored: the engine, and the address or LocalCluster size."""
    if parallel.engine == "local":
        return {"engine": "local"}
    where = {"address": parallel.address} if parallel.address else {"n_workers": parallel.n_workers}
    return {"engine": "dask", **where}


def warm_worker() -> None:
    """Import what scoring a chunk needs, so that the first chunk on a worker is not the slow one."""
    import mlflow.pyfunc  # noqa: F401
    import sklearn.ensemble  # noqa: F401

    import components.inference.champion  # noqa: F401
    import components.inference.scoring  # noqa: F401
    import components.model.trained  # noqa: F401


def _apply(fn: Callable[[Any], R], chunk: Any) -> R:
    return fn(chunk)


def _map_local(fn: Callable[[Any], R], chunks: Iterable[Any]) -> Iterator[R]:
    for number, chunk in enumerate(chunks, start=1):
        try:
            result = fn(chunk)
        except Exception as err:
            raise _failed(describe_chunk(chunk, number), err) from err
        yield result


def _map_dask(fn: Callable[[Any], R], chunks: Iterable[Any], address: str, in_flight: int | None) -> Iterator[R]:
    from distributed import Client

    with Client(address, set_as_default=False) as client:
        limit = in_flight or 2 * max(1, len(client.nthreads()))  # one scoring and one waiting per worker
        remote_fn = client.scatter(fn, broadcast=True, hash=False)  # once per worker, not once per chunk
        pending: deque[tuple[str, Any]] = deque()

        def take() -> R:
            where, future = pending.popleft()
            try:
                return future.result()
            except Exception as err:
                raise _failed(where, err) from err
            finally:
                future.release()

        try:
            for number, chunk in enumerate(chunks, start=1):
                data = client.scatter(chunk, hash=False)  # straight to a worker: no copy in the task graph
                pending.append((describe_chunk(chunk, number), client.submit(_apply, remote_fn, data, pure=False)))
                del chunk, data
                if len(pending) >= limit:
                    yield take()
            while pending:
                yield take()
        finally:
            if pending:  # stopped early (an error, or the caller stopped reading): drop what is still out
                client.cancel([future for _, future in pending])


def map_chunks(
    fn: Callable[[Any], R],
    chunks: Iterable[Any],
    parallel: ParallelSettings,
    *,
    cluster: ScoringCluster | None = None,
    in_flight: int | None = None,
) -> Iterator[R]:
    """``fn`` over ``chunks`` on ``parallel``'s engine, results in the chunks' order.

    ``cluster``: a started :class:`ScoringCluster` to use (the caller starts it early and closes
    it); without one, a Dask engine starts (and stops) one for this iteration. ``in_flight``: at
    most this many chunks submitted and not yet yielded (default two per Dask worker). ``fn``
    must be picklable for Dask; a :class:`ChunkScorer` is, and small.
    """
    if parallel.engine == "local":
        yield from _map_local(fn, chunks)
        return
    own = cluster is None
    cluster = cluster or ScoringCluster(parallel)
    try:
        yield from _map_dask(fn, chunks, cluster.address(), in_flight)
    finally:
        if own:
            cluster.close()
