"""Infra validation: serve the exact bento, send it held-out rows, compare with the pyfunc.

The served answers must equal what ``mlflow.pyfunc.load_model(reference).predict``
says for the same rows (labels equal and every probability within ``prob_tol`` for a
classifier, values within ``prob_tol * max(1, |value|)`` for regression: see
``answer_parity``; the task is the reference's) and single record latency must stay
under a p95 budget. A failed check is a result (``InfraReport.passed`` is False,
``reason`` says why and names the first differing row and field), never an exception.

The server is started by ``bento_server.serve_bento``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from components.release.answer_parity import REGRESSION, compare_predictions, parity_problems, reference_task
from components.release.bento_server import ServeError, check_exact_tag, serve_bento

log = logging.getLogger(__name__)


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


@contextmanager
def _server(bento_tag: str, url: str | None, bentoml_home: str | None, timeout_s: float,
            stop_in_background: bool) -> Iterator[tuple[str, int]]:  # fmt: skip
    """``url`` as it is (port 0: not ours), else a server of ``bento_tag`` started for the block."""
    if url:
        yield url, 0
        return
    with serve_bento(bento_tag, bentoml_home=bentoml_home, timeout_s=timeout_s,
                     stop_in_background=stop_in_background) as served:  # fmt: skip
        yield served.url, served.port


def _reference_answers(reference_model_uri: str, rows: pd.DataFrame) -> tuple[pd.DataFrame, list[dict], str]:
    """What the registered pyfunc answers for ``rows``, the records clients would send, and the kind of answer."""
    import mlflow

    from components.model.trained import pyfunc_input

    pyfunc = mlflow.pyfunc.load_model(reference_model_uri)
    features = pyfunc_input(pyfunc, rows)
    expected = pyfunc.predict(features).reset_index(drop=True)
    records = frame_to_records(rows[list(features.columns)])  # as clients send them: raw values, not model input
    return expected, records, reference_task(expected)


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
    stop_in_background: bool = False,
) -> InfraReport:
    """Serve ``bento_tag``, replay ``rows`` (one request per row, then batches), judge the answers.

    With ``url``, check a server that already runs ``bento_tag`` (a staging deployment, say)
    instead of starting one. The reference answers are computed while the server starts.
    ``stop_in_background``: see ``bento_server.serve_bento``.
    """
    import httpx

    check_exact_tag(bento_tag)
    if rows.empty:
        raise ValueError("validate_bento needs at least one row")
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="reference-answers") as pool:
        reference = pool.submit(_reference_answers, reference_model_uri, rows)
        try:
            with _server(bento_tag, url, bentoml_home, timeout_s, stop_in_background) as (served_url, port):
                startup_s = 0.0 if url else time.monotonic() - started
                expected, records, task = reference.result()
                replay = _replay(served_url, bento_tag, records, max_single, batch_size, task)
        except (ServeError, httpx.HTTPError, ValueError, KeyError) as err:
            _, _, task = reference.result()  # the reference's own failure is raised, not reported
            return InfraReport(passed=False, reason=f"serving failed: {err}", bento_tag=bento_tag, n_rows=len(rows),
                               p95_budget_ms=p95_budget_ms, task=task)  # fmt: skip
    base = {"bento_tag": bento_tag, "n_rows": len(records), "p95_budget_ms": p95_budget_ms, "task": task}
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
