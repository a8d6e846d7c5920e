"""Validation started before the flow, while Prefect's temporary API starts (issue 19).

On Prefect's temporary API, `mlops run` waits 4-11 s for the API to start (longest on a new Prefect
home, which is migrated first), and only then does the flow validate the data: 6-12 s of Great
Expectations in a child process. Neither needs the other. So `mlops run` starts the validation child
once it knows there is work, and the flow takes that validation instead of starting its own, when it is
of the same inputs (the validation cache's key: data, contract, settings, drift reference, code). The
flow adopts the run folder the report was written to. Nothing else changes: the same child body
(``steps.load_and_check``), the same report, the same failure, raised in the flow's validate task.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows import steps, validation_cache
from flows.child_process import ChildProcess

log = logging.getLogger(__name__)


@dataclass
class Ahead:
    """A validation running in ``child`` into ``out_dir``, for the inputs ``key`` stands for."""

    key: str
    data_path: Path
    out_dir: Path
    child: ChildProcess
    future: Future

    def result(self, ctx: steps.RunContext, out_dir: Path) -> Any:
        """``steps.load_and_check``'s answer (its exception raised here); the child is then stopped."""
        if out_dir != self.out_dir:
            raise ValueError(f"the validation ahead wrote to {self.out_dir}, not {out_dir}")
        try:
            return self.future.result()
        finally:
            self.child.close()


_pending: dict[str, Ahead] = {}


@contextmanager
def ahead(ctx: steps.RunContext | None, *, force: bool) -> Iterator[None]:
    """Validate ``ctx``'s data in a child from now on, for the flow to :func:`take` (``ctx`` None: nothing).

    Not started for images (their flow validates a manifest of its own) or when the flow would reuse a kept
    validation instead. On exit, a validation the flow did not take is stopped and its folder removed.
    """
    started = None if ctx is None else _start(ctx, force=force)
    try:
        yield
    finally:
        if started is not None and _pending.pop(started.key, None) is started:  # never taken
            started.child.close()
            shutil.rmtree(started.out_dir, ignore_errors=True)


def _start(ctx: steps.RunContext, *, force: bool) -> Ahead | None:
    if steps.is_images(ctx):
        return None
    key, kept = validation_cache.current_key(ctx)
    if key is None or (kept and not force):
        return None
    child = ChildProcess(warm=steps.VALIDATION_IMPORTS)
    started = Ahead(key, ctx.data_path, ctx.out_dir, child, child.submit(steps.load_and_check, ctx, ctx.out_dir))
    _pending[key] = started
    log.debug("validating %s ahead of the flow into %s", ctx.data_path.name, ctx.out_dir)
    return started


def take(ctx: steps.RunContext) -> Ahead | None:
    """The validation started ahead of this run for exactly ``ctx``'s inputs, else None (validate as usual)."""
    if not _pending:
        return None
    key, _ = validation_cache.current_key(ctx)
    started = _pending.get(key) if key is not None else None
    if started is None or started.data_path != ctx.data_path:  # the same bytes at another path: its own report
        return None
    return _pending.pop(key)
