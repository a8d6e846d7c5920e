"""One step body run in a spawned child process, whose imports never load into the caller.

The training flow validates in a child because Great Expectations stays resident once imported
(about 95 MiB here), and the process that validates is the one that trains next: its peak memory
would carry GX through every fit. The DVC stages get the same separation for free (validation is
its own stage). The child starts, and imports ``warm`` modules, as soon as it is made, so the
import overlaps with whatever the caller does meanwhile; it exits once the call returned.
"""

from __future__ import annotations

import importlib
import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def _import_all(modules: tuple[str, ...]) -> None:
    for name in modules:
        importlib.import_module(name)


class ChildProcess:
    """A single spawned worker for one call; a context manager that stops it on exit.

    Spawned, not forked: a fork would copy the caller's memory (and its Prefect threads) into the
    child. Arguments and results cross by pickle, so exceptions must pickle too (ours do).
    """

    def __init__(self, warm: tuple[str, ...] = ()) -> None:
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=_import_all, initargs=(warm,))
        self._pool.submit(int)  # start the process (and its imports) now, not at the first call

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in the child; its exception is raised here."""
        try:
            return self._pool.submit(fn, *args, **kwargs).result()
        finally:
            self.close()  # one call: the child's memory is handed back before the caller goes on

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """``fn(*args, **kwargs)`` started in the child; the caller takes the result and closes the child."""
        return self._pool.submit(fn, *args, **kwargs)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ChildProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
