"""Fitting for the training flow: every candidate and search trial a cached Prefect task.

``train.parallel`` picks the task runner (Prefect's default, one fit at a time, or prefect-dask's
``DaskTaskRunner``); ``choose_candidate`` decides what to fit, so the DVC stage and this module
choose the same model. Each fit is cached on the content hashes DVC uses (``components/cache.py``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import task

from components.cache import TrainedResultSerializer, key_from_task_parameters
from components.config import ConfigError, ParallelSettings, Settings
from components.evaluate import EvalResult, choose_best
from components.model import TrainedModel
from components.search import CandidateOutcome


@task(
    name="fit-candidate",
    cache_key_fn=key_from_task_parameters,
    persist_result=True,
    result_serializer=TrainedResultSerializer(),
)
def fit_task(name: str, spec: dict[str, Any], train_frame, val_frame, target: str, seed: int, threshold: float,
             metric: str, data_key: str, code: str) -> tuple[TrainedModel, EvalResult]:  # fmt: skip
    """Fit one spec on train, score it on val. Cached on (data_key, spec, seed, threshold, metric, code)."""
    from components.search import fit_and_score

    return fit_and_score(
        name, spec, train_frame, val_frame, target, seed=seed, threshold=threshold, primary_metric=metric
    )


def _task_runner(parallel: ParallelSettings):
    """Where fits run: one at a time in-process (``local``), or on a Dask cluster (``dask``)."""
    if parallel.engine == "dask":
        from prefect_dask import DaskTaskRunner

        api_url = _api_url()
        if parallel.address:
            if api_url is None:
                raise ConfigError(
                    "train.parallel.address: workers of an existing Dask cluster report to the Prefect API, "
                    "and this run uses a temporary one they cannot reach; set PREFECT_API_URL to a Prefect server"
                )
            return DaskTaskRunner(address=parallel.address)
        workers = {"n_workers": parallel.n_workers, "threads_per_worker": 1, "processes": True}
        # Workers of a LocalCluster report to this run's API, also when it is the temporary local one
        # (otherwise every worker would start a temporary API of its own).
        env = {"PREFECT_API_URL": api_url or _ephemeral_api_url()}
        return DaskTaskRunner(cluster_kwargs={**workers, "host": "127.0.0.1", "dashboard_address": None, "env": env})
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=1)


def _api_url() -> str | None:
    from prefect.settings import get_current_settings

    return get_current_settings().api.url


def _ephemeral_api_url() -> str:
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the instance this process's flow run already talks to
    server.start()  # a no-op when it is running
    return server.api_url


@dataclass
class _FitLog:
    """How many fits ran and how many Prefect answered from its cache."""

    fitted: int = 0
    cached: int = 0
    seconds: float = 0.0  # wall time of the whole training phase (cluster start and stop included)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, cached: bool) -> None:
        with self.lock:
            self.cached, self.fitted = self.cached + cached, self.fitted + (not cached)

    def note(self) -> str:
        return f"fits: {self.fitted} trained, {self.cached} from Prefect's cache"


def _fit_task(root: Path, force: bool):
    """The fit task, caching into the project (``.mlops/prefect-results``) unless a storage block is configured."""
    from prefect.settings import get_current_settings

    options: dict[str, Any] = {"refresh_cache": True} if force else {}
    if get_current_settings().results.default_storage_block is None:
        import hashlib

        from prefect.filesystems import LocalFileSystem

        # Prefect only takes saved blocks as task storage: one per project root, saved on every run.
        name = "mlops-fit-cache-" + hashlib.sha256(str(root).encode()).hexdigest()[:12]
        LocalFileSystem(basepath=str(root / ".mlops" / "prefect-results")).save(name, overwrite=True)
        options["result_storage"] = f"local-file-system/{name}"
    return fit_task.with_options(**options)


def _fit_batch(runner, task_, name: str, common: dict[str, Any], fits: _FitLog):
    """``fit_batch`` for ``choose_candidate``: every spec a ``fit-candidate`` task on ``runner``."""

    def fit_batch(specs: list[dict[str, Any]]) -> list[Any]:
        futures = [runner.submit(task_, {"name": name, "spec": spec, **common}) for spec in specs]
        outcomes = []
        for future in futures:
            future.wait()
            if future.state.is_completed():
                outcomes.append(future.result())
                fits.count(cached=future.state.name == "Cached")
            else:
                outcomes.append(future.result(raise_on_failure=False))
        return outcomes

    return fit_batch


def train_and_choose(settings: Settings, root: Path, splits, logger, force: bool):
    """Fit (or search) every enabled candidate on ``train.parallel``'s engine; choose the best on validation."""
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    from components.cache import frame_hash, train_code_hash
    from components.search import choose_candidate

    tr, ev = settings.train, settings.evaluate
    data_key, fits, task_ = f"{frame_hash(splits.train)}-{frame_hash(splits.val)}", _FitLog(), _fit_task(root, force)
    common = {
        **{"train_frame": splits.train, "val_frame": splits.val, "target": settings.data.target, "seed": tr.seed},
        **{"threshold": ev.decision_threshold, "metric": ev.primary_metric, "data_key": data_key},
        "code": train_code_hash(),
    }
    candidates = tr.enabled()
    logger.info("training %d candidates on the %s engine (search: %d trials each where a space is given)",
                len(candidates), tr.parallel.engine, tr.search.n_trials)  # fmt: skip
    started = time.perf_counter()
    with _task_runner(tr.parallel) as runner:
        if tr.parallel.engine == "dask":
            runner.client  # noqa: B018 - start (or connect to) the cluster once, before the candidate threads race to

        def one(name: str, spec: dict[str, Any]) -> CandidateOutcome:
            return choose_candidate(
                name,
                spec,
                n_trials=tr.search.n_trials,
                batch_size=tr.search.batch_size,
                seed=tr.search.seed,
                primary_metric=ev.primary_metric,
                fit_batch=_fit_batch(runner, task_, name, common, fits),
            )

        # One thread per candidate only submits and waits: the runner decides how many fits run at once.
        with ThreadPoolExecutor(max_workers=len(candidates), thread_name_prefix="candidate") as pool:
            jobs = {c: pool.submit(contextvars.copy_context().run, one, c, s.as_spec()) for c, s in candidates.items()}
            outcomes = {c: job.result() for c, job in jobs.items()}
    for name, outcome in outcomes.items():
        found = f" (best of {len(outcome.search.trials)} trials)" if outcome.search else ""
        logger.info(
            "candidate %s: val %s %.4f%s", name, ev.primary_metric, outcome.result.metrics[ev.primary_metric], found
        )
    fits.seconds = time.perf_counter() - started
    logger.info("%s in %.1f s", fits.note(), fits.seconds)
    best = choose_best([o.result for o in outcomes.values()], ev.primary_metric)
    return outcomes, best, fits
