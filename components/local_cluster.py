"""A Dask LocalCluster started in the background, for one phase of a flow (fitting, or scoring a batch).

The cluster starts in a thread as soon as :class:`BackgroundCluster` is made, so its worker
processes spawn and import their stack (``warm``) while the flow does other work; :meth:`address`
waits for it. :meth:`close` stops it, in the background unless asked to wait, and leaves this
process's environment as it was before the cluster started.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any


class BackgroundCluster:
    """``n_workers`` single-threaded worker processes on 127.0.0.1, with ``env`` set in each.

    ``warm`` (picklable, no arguments) runs once on every worker as soon as the cluster is up, so
    that the first task on a worker does not pay for its imports. ``what`` names the setting that
    asked for the cluster in errors (``train.parallel``, ``batch.parallel``).
    """

    def __init__(self, n_workers: int, env: dict[str, str] | None = None, warm: Callable[[], Any] | None = None,
                 what: str = "parallel") -> None:  # fmt: skip
        self.n_workers, self.env, self.warm, self.what = n_workers, dict(env or {}), warm, what
        self.cluster: Any = None  # the LocalCluster, once up (None again after close)
        self.error: BaseException | None = None
        self._saved_env: dict[str, str | None] = {}
        self._ready = threading.Event()  # the cluster is up (or failed to start)
        self._closing: threading.Thread | None = None
        self._starting = threading.Thread(target=self._start, name="dask-cluster", daemon=True)
        self._starting.start()

    def _start(self) -> None:
        import dask
        from distributed import Client, LocalCluster

        try:
            # Dask's nannies give workers MALLOC_TRIM_THRESHOLD_=65536 so that long-lived workers hand
            # memory back to the OS. It also pins glibc's mmap threshold, so every large numpy buffer
            # is mapped and unmapped afresh, and a worker's HGB fit costs most of its CPU time again
            # (benchmarks/RESULTS.md, parallel). This cluster lives for one phase of a flow: left out.
            with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
                keys = set(dask.config.get("distributed.nanny.pre-spawn-environ")) | {"PYTHONHASHSEED"}
                self._saved_env = {k: os.environ.get(k) for k in keys}
                self.cluster = LocalCluster(
                    n_workers=self.n_workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    env=self.env,
                )
            # Nannies copy their pre-spawn variables (OMP_NUM_THREADS=1, ...) into the process that
            # starts them; this flow's later steps must not run single-threaded because of it.
            self._restore_env()
        except BaseException as exc:  # noqa: BLE001 - re-raised by address()
            self.error = exc
            return
        finally:
            self._ready.set()
        if self.warm is not None:  # tasks submitted meanwhile wait for these imports, as they would for their own
            with contextlib.suppress(Exception), Client(self.cluster) as client:
                client.run(self.warm)

    def _restore_env(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def address(self) -> str:
        """The scheduler's address, once the cluster is up; RuntimeError naming why when it did not start."""
        self._ready.wait()
        if self.error is not None or self.cluster is None:
            why = self.error if self.error is not None else "it was closed"
            raise RuntimeError(f"{self.what}: the local Dask cluster did not start: {why}") from self.error
        return self.cluster.scheduler_address

    def close(self, wait: bool = True) -> None:
        """Stop the cluster, in the background unless ``wait``; calling it again only waits for that.

        Waiting returns once every worker process has exited.
        """
        if self._closing is None:
            self._closing = threading.Thread(target=self._stop, name="dask-cluster-close", daemon=True)
            self._closing.start()
        if wait:
            self._closing.join()

    def _stop(self) -> None:
        self._starting.join()
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None
        self._restore_env()

    def __enter__(self) -> BackgroundCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
