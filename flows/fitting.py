"""Fitting for the training flow: every candidate and search trial a cached Prefect task.

``train.parallel`` picks the task runner (Prefect's default, one fit at a time, or prefect-dask's
``DaskTaskRunner``); ``choose_candidate`` decides what to fit, so the DVC stage and this module
choose the same model. Each fit is cached on the content hashes DVC uses (``flows/prefect_cache.py``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import task

from components.config import ConfigError, ParallelSettings, Settings
from components.evaluation.metrics import EvalResult, choose_best
from components.local_cluster import BackgroundCluster
from components.model.trained import TrainedModel
from components.training.search import CandidateOutcome
from flows import temporary_api
from flows.prefect_cache import TrainedResultSerializer, key_from_task_parameters


@task(
    name="fit-candidate",
    task_run_name="fit {name}",  # a search trial's fit is named in _fit_batch; neither name is in the cache key
    cache_key_fn=key_from_task_parameters,
    persist_result=True,
    result_serializer=TrainedResultSerializer(),
)
def fit_task(name: str, spec: dict[str, Any], train_frame, val_frame, target: str, seed: int, threshold: float,
             metric: str, data_key: str, code: str,
             task: str = "binary") -> tuple[TrainedModel, EvalResult]:  # fmt: skip
    """Fit one spec on train, score it on val. Cached on (data_key, spec, seed, threshold, metric, code, task)."""
    from components.training.search import fit_and_score

    return fit_and_score(
        name, spec, train_frame, val_frame, target, seed=seed, threshold=threshold, primary_metric=metric, task=task
    )


class FitEngine:
    """Where fits run: one at a time in this process (``local``), or on a Dask cluster (``dask``).

    A LocalCluster (``components.local_cluster``) is started as soon as the engine is made, in a
    background thread, and its workers import the training stack while the flow validates the data;
    ``close`` stops it, also in the background when asked to. With ``address`` the fits go to an
    existing scheduler, whose workers and lifetime are the user's.
    """

    def __init__(self, parallel: ParallelSettings) -> None:
        self.parallel = parallel
        self.local: BackgroundCluster | None = None
        if parallel.engine == "dask" and parallel.address and _api_url() in (None, temporary_api.url()):
            raise ConfigError(
                "train.parallel.address: workers of an existing Dask cluster report to the Prefect API, "
                "and this run uses a temporary one they cannot reach; set PREFECT_API_URL to a Prefect server"
            )
        if parallel.engine == "dask" and not parallel.address:
            # Workers report to this run's API, also when it is the temporary local one (otherwise
            # every worker would start a temporary API of its own).
            api_url = _api_url() or _ephemeral_api_url()
            self.local = BackgroundCluster(parallel.n_workers, env={"PREFECT_API_URL": api_url}, warm=_warm_worker,
                                           what="train.parallel")  # fmt: skip
        else:
            warm_fit_imports()

    def runner(self):
        """A Prefect task runner on this engine (waits for the local cluster to be up)."""
        if self.parallel.engine == "local":
            from prefect.task_runners import ThreadPoolTaskRunner

            return ThreadPoolTaskRunner(max_workers=1)
        from prefect_dask import DaskTaskRunner

        if self.parallel.address:
            return DaskTaskRunner(address=self.parallel.address)
        assert self.local is not None
        return DaskTaskRunner(address=self.local.address())

    def close(self, wait: bool = True) -> None:
        """Stop the cluster this engine started (if any), in the background unless ``wait``.

        This process's environment is left as it was before the cluster started.
        """
        if self.local is not None:
            self.local.close(wait=wait)

    def __enter__(self) -> FitEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_warming: list[threading.Thread] = []


def warm_fit_imports() -> None:
    """Import the fit stack in a background thread, once per process: local fits run here, and skops alone
    takes seconds to import. `mlops run` starts it while Prefect's temporary API starts; the flow, while
    the data is validated in the validation child; either way not in the first fit."""
    if not _warming:
        _warming.append(threading.Thread(target=_warm_worker, name="warm-fit-imports", daemon=True))
        _warming[0].start()


def _warm_worker() -> None:
    """Import what a fit and its result storage need, so that the first fit on a worker is not the slow one."""
    import skops.io  # noqa: F401
    import torch  # noqa: F401
    from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: F401

    import components.training.search  # noqa: F401
    import flows.prefect_cache  # noqa: F401


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


def _fit_batch(runner, task_, name: str, common: dict[str, Any], fits: _FitLog, search: bool = False):
    """``fit_batch`` for ``choose_candidate``: every spec a ``fit-candidate`` task on ``runner``.

    With ``search`` every spec is a trial, asked and fitted in order: its run is named
    ``fit <name> · trial <n>``, numbered as Optuna and the MLflow trial runs number it.
    """
    asked = 0

    def named(number: int):
        label = f"fit {name} · trial {number}".replace("{", "{{").replace("}", "}}")  # a literal, not a template
        return task_.with_options(task_run_name=label)

    def fit_batch(specs: list[dict[str, Any]]) -> list[Any]:
        nonlocal asked
        tasks = [named(asked + i) if search else task_ for i in range(len(specs))]
        asked += len(specs)
        futures = [
            runner.submit(t, {"name": name, "spec": spec, **common}) for t, spec in zip(tasks, specs, strict=True)
        ]
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


def train_and_choose(settings: Settings, root: Path, splits, logger, force: bool, engine: FitEngine | None = None,
                     task: str = "binary"):  # fmt: skip
    """Fit (or search) every enabled candidate on ``train.parallel``'s engine; choose the best on validation.

    ``engine`` is closed here as soon as the fits are done, without waiting for its cluster to stop;
    without one, one is made and stopped within this call.
    """
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    from components.training.search import choose_candidate
    from flows.prefect_cache import frame_hash, train_code_hash

    tr, ev = settings.train, settings.evaluate
    data_key, fits, task_ = f"{frame_hash(splits.train)}-{frame_hash(splits.val)}", _FitLog(), _fit_task(root, force)
    common = {
        **{"train_frame": splits.train, "val_frame": splits.val, "target": settings.data.target, "seed": tr.seed},
        **{"threshold": ev.decision_threshold, "metric": ev.primary_metric, "data_key": data_key},
        "code": train_code_hash(),
        "task": task,
    }
    candidates = tr.enabled()
    logger.info("training %d candidates on the %s engine (search: %d trials each where a space is given)",
                len(candidates), tr.parallel.engine, tr.search.n_trials)  # fmt: skip
    started = time.perf_counter()
    own_engine = engine is None
    engine = engine or FitEngine(tr.parallel)
    try:
        with engine.runner() as runner:
            if tr.parallel.engine == "dask":
                runner.client  # noqa: B018 - connect once, before the candidate threads race to

            def one(name: str, spec: dict[str, Any]) -> CandidateOutcome:
                return choose_candidate(
                    name,
                    spec,
                    n_trials=tr.search.n_trials,
                    batch_size=tr.search.batch_size,
                    seed=tr.search.seed,
                    primary_metric=ev.primary_metric,
                    fit_batch=_fit_batch(
                        runner, task_, name, common, fits, search=bool(spec.get("search")) and tr.search.n_trials > 0
                    ),
                )

            # One thread per candidate only submits and waits: the runner decides how many fits run at once.
            with ThreadPoolExecutor(max_workers=len(candidates), thread_name_prefix="candidate") as pool:
                jobs = {
                    c: pool.submit(contextvars.copy_context().run, one, c, s.as_spec()) for c, s in candidates.items()
                }
                outcomes = {c: job.result() for c, job in jobs.items()}
    finally:
        engine.close(wait=own_engine)  # a flow's engine stops in the background while the flow goes on
    for name, outcome in outcomes.items():
        found = f" (best of {len(outcome.search.trials)} trials)" if outcome.search else ""
        logger.info(
            "candidate %s: val %s %.4f%s", name, ev.primary_metric, outcome.result.metrics[ev.primary_metric], found
        )
    fits.seconds = time.perf_counter() - started
    logger.info("%s in %.1f s", fits.note(), fits.seconds)
    best = choose_best([o.result for o in outcomes.values()], ev.primary_metric)
    return outcomes, best, fits
