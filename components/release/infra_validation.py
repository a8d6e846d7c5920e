"""Infra validation: serve the exact bento, send it held-out rows, compare with the pyfunc.

The served answers must equal what ``mlflow.pyfunc.load_model(reference).predict``
says for the same rows (labels equal and every probability within ``prob_tol`` for a
classifier, values within ``prob_tol * max(1, |value|)`` for regression: see
``answer_parity``; the task is the reference's) and single record latency must stay
under a p95 budget. A failed check is a result (``InfraReport.passed`` is False,
``reason`` says why and names the first differing row and field), never an exception.

``serve_bento`` (a context manager) is the one way we start ``bentoml serve``:
exact tag, 127.0.0.1, a free port, its own session, always stopped.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.release.answer_parity import REGRESSION, compare_predictions, parity_problems, reference_task

log = logging.getLogger(__name__)


class ServeError(RuntimeError):
    """``bentoml serve`` did not come up; the message holds the end of its log."""


@dataclass(frozen=True)
class ServedBento:
    url: str
    port: int
    pid: int
    log_path: Path


@dataclass(frozen=True)
class InfraReport:
    passed: bool
    reason: str
    bento_tag: str
    n_rows: int
    n_requests: int = 0
    errors: int = 0
    label_mismatches: int = 0
    max_prob_diff: float = math.nan
    p50_ms: float = math.nan
    p95_ms: float = math.nan
    p95_budget_ms: float = math.nan
    startup_s: float = math.nan
    port: int = 0
    task: str = "binary"
    max_value_diff: float = math.nan  # regression: the largest |difference| / max(1, |value|)


def check_exact_tag(bento_tag: str) -> None:
    """Refuse ``name`` and ``name:latest``: what we validate must be what we deploy."""
    name, _, version = bento_tag.partition(":")
    if not name or not version or version == "latest":
        raise ValueError(f"need an exact bento tag 'name:version', got {bento_tag!r}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bentoml_command() -> list[str]:
    """The ``bentoml`` CLI of this interpreter's environment."""
    exe = Path(sys.executable).parent / "bentoml"
    return [str(exe)] if exe.exists() else [shutil.which("bentoml") or "bentoml"]


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


GUARD_GRACE_S = 10.0  # the guard's SIGTERM-to-SIGKILL wait; bentoml serve stops in ~1 s


def stop_server(proc: subprocess.Popen, grace_s: float = GUARD_GRACE_S + 5) -> None:
    """SIGTERM ``proc`` (the guard, or a bare server) and wait; then SIGKILL anything left of its tree.

    The guard stops ``bentoml serve`` (which stops its workers) and escalates to SIGKILL by itself
    within ``GUARD_GRACE_S``; the kills here are for a guard that could not.
    """
    from components.release.process_guard import descendants, kill_all

    family = descendants(proc.pid)  # now: workers run in sessions of their own and may be orphaned later
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            log.warning("pid %d ignored SIGTERM for %g s; killing its tree", proc.pid, grace_s)
            with suppress(ProcessLookupError, PermissionError):  # not reaped yet, so the group id is still ours
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    if left := kill_all(family):
        log.warning("could not stop pids %s of bentoml serve", [p.pid for p in left])


def _served_pid(guard: subprocess.Popen) -> int:
    """The pid of ``bentoml serve`` itself (the guard's first child), the pid callers know it by."""
    import psutil

    with suppress(psutil.Error):
        if children := psutil.Process(guard.pid).children():
            return min(children, key=lambda p: p.create_time()).pid
    return guard.pid


@contextmanager
def serve_bento(
    bento_tag: str, *, bentoml_home: str | None = None, timeout_s: float = 120, env: dict[str, str] | None = None
) -> Iterator[ServedBento]:
    """Run ``bentoml serve <exact tag>`` on a free 127.0.0.1 port until the block exits.

    The server runs under ``components.release.process_guard``, which stops its whole tree (workers
    included) if this process dies without getting to the ``finally``, even by SIGKILL.
    """
    import httpx

    from components.release.process_guard import guarded_command

    check_exact_tag(bento_tag)
    port = free_port()
    child_env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true", **(env or {})}
    if bentoml_home:
        child_env["BENTOML_HOME"] = str(bentoml_home)
    log_fd, log_name = tempfile.mkstemp(prefix="bentoml-serve-", suffix=".log")
    cmd = [*bentoml_command(), "serve", bento_tag, "--host", "127.0.0.1", "--port", str(port)]
    # Own session: a Ctrl-C in the terminal reaches only us, and we stop the server in order.
    proc = subprocess.Popen(
        guarded_command(cmd, grace_s=GUARD_GRACE_S),
        stdout=log_fd,
        stderr=subprocess.STDOUT,
        env=child_env,
        start_new_session=True,
    )
    os.close(log_fd)
    url, log_path = f"http://127.0.0.1:{port}", Path(log_name)
    try:
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as client:
            while True:
                if proc.poll() is not None:
                    raise ServeError(f"bentoml serve exited with code {proc.returncode}:\n{_tail(log_path)}")
                try:
                    if client.get(f"{url}/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise ServeError(f"{bento_tag} not ready after {timeout_s:.0f} s:\n{_tail(log_path)}")
                time.sleep(0.25)
        pid = _served_pid(proc)
        log.info("serving %s at %s (pid %d, guard %d)", bento_tag, url, pid, proc.pid)
        yield ServedBento(url=url, port=port, pid=pid, log_path=log_path)
    finally:
        stop_server(proc)
        log_path.unlink(missing_ok=True)


def frame_to_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready records with full float precision; NaN and NA become null."""

    def clean(v: Any) -> Any:
        return None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else v

    columns = {c: [clean(v) for v in frame[c].tolist()] for c in frame.columns}
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]


@dataclass
class _Replay:
    latencies_ms: list[float]
    single: list[dict[str, Any]]
    batched: list[dict[str, Any]]
    failures: list[str]


def _replay(
    url: str, bento_tag: str, records: list[dict[str, Any]], max_single: int, batch_size: int, task: str
) -> _Replay:
    """One request per record (timed), then the records again in batches."""
    import httpx

    out = _Replay([], [], [], [])
    # Expire idle connections before the server's 5 s keep-alive does: no reuse races.
    with httpx.Client(base_url=url, timeout=30.0, limits=httpx.Limits(keepalive_expiry=1.0)) as client:
        metadata = client.get("/metadata").json()
        served_tag = metadata.get("bento_tag")
        if served_tag != bento_tag:
            raise ValueError(f"{url} serves bento {served_tag!r}, not {bento_tag!r}")
        served_task = metadata.get("task", "binary")  # bentos from before tasks were binary
        if served_task != task:
            raise ValueError(f"{bento_tag} answers as a {served_task!r} model, the reference pyfunc is {task!r}")
        for record in records[:max_single]:
            t0 = time.perf_counter()
            resp = client.post("/predict", json={"records": [record]})
            out.latencies_ms.append((time.perf_counter() - t0) * 1000)
            if resp.status_code == 200:
                out.single.extend(resp.json()["predictions"])
            else:
                out.failures.append(f"/predict {resp.status_code}: {resp.text[:200]}")
        for i in range(0, len(records), batch_size):
            resp = client.post("/batch_predict", json={"records": records[i : i + batch_size]})
            if resp.status_code == 200:
                out.batched.extend(resp.json()["predictions"])
            else:
                out.failures.append(f"/batch_predict {resp.status_code}: {resp.text[:200]}")
    return out


def validate_bento(
    bento_tag: str,
    rows: pd.DataFrame,
    reference_model_uri: str,
    *,
    p95_budget_ms: float,
    bentoml_home: str | None = None,
    timeout_s: float = 120,
    prob_tol: float = 1e-6,
    batch_size: int = 256,
    max_single: int = 500,
    url: str | None = None,
) -> InfraReport:
    """Serve ``bento_tag``, replay ``rows`` (one request per row, then batches), judge the answers.

    With ``url``, check a server that already runs ``bento_tag`` (a staging deployment, say)
    instead of starting one.
    """
    import httpx
    import mlflow

    check_exact_tag(bento_tag)
    if rows.empty:
        raise ValueError("validate_bento needs at least one row")
    from components.model.trained import pyfunc_input

    pyfunc = mlflow.pyfunc.load_model(reference_model_uri)
    features = pyfunc_input(pyfunc, rows)
    expected = pyfunc.predict(features).reset_index(drop=True)
    task = reference_task(expected)
    records = frame_to_records(rows[list(features.columns)])  # as clients send them: raw values, not model input
    base = {"bento_tag": bento_tag, "n_rows": len(records), "p95_budget_ms": p95_budget_ms, "task": task}
    started, port = time.monotonic(), 0
    try:
        if url:
            replay, startup_s = _replay(url, bento_tag, records, max_single, batch_size, task), 0.0
        else:
            with serve_bento(bento_tag, bentoml_home=bentoml_home, timeout_s=timeout_s) as served:
                startup_s, port = time.monotonic() - started, served.port
                replay = _replay(served.url, bento_tag, records, max_single, batch_size, task)
    except (ServeError, httpx.HTTPError, ValueError, KeyError) as err:
        return InfraReport(passed=False, reason=f"serving failed: {err}", **base)
    n_single = min(len(records), max_single)
    n_requests = n_single + math.ceil(len(records) / batch_size)
    single = compare_predictions(expected.iloc[:n_single], replay.single, task=task, tol=prob_tol,
                                 where="single-record request, row")  # fmt: skip
    batch = compare_predictions(expected, replay.batched, task=task, tol=prob_tol, where="batch requests, row")
    p50, p95 = (float(np.percentile(replay.latencies_ms, q)) for q in (50, 95))
    problems = []
    if replay.failures:
        problems.append(f"{len(replay.failures)} of {n_requests} requests failed (first: {replay.failures[0]})")
    problems += parity_problems(task, single, batch, prob_tol)
    if p95 > p95_budget_ms:
        problems.append(f"p95 latency {p95:.1f} ms exceeds the budget of {p95_budget_ms:g} ms")
    agree = f"values within {prob_tol:g} x max(1, |value|)" if task == REGRESSION else (
        f"labels equal, probabilities within {prob_tol:g}")  # fmt: skip
    reason = "; ".join(problems) or f"{len(records)} rows: {agree}, p95 {p95:.1f} ms"
    max_diff = max(single.max_diff, batch.max_diff)
    report = InfraReport(
        passed=not problems,
        reason=reason,
        n_requests=n_requests,
        errors=len(replay.failures),
        label_mismatches=single.label_mismatches + batch.label_mismatches,
        max_prob_diff=math.nan if task == REGRESSION else max_diff,
        max_value_diff=max_diff if task == REGRESSION else math.nan,
        p50_ms=p50,
        p95_ms=p95,
        startup_s=startup_s,
        port=port,
        **base,
    )
    log.info("infra validation of %s: %s (%s)", bento_tag, "passed" if report.passed else "FAILED", reason)
    return report
