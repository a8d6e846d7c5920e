"""Infra validation of an image bento: serve the exact bento, upload held-out images, compare with the pyfunc.

``components.release.infra_validation`` for images: the same ``serve_bento`` (exact tag, 127.0.0.1, a free
port, always stopped), the same comparison (``answer_parity``: labels equal, every probability within
``prob_tol``) and the same ``InfraReport``. Each file goes once on its own to ``/predict_image`` (timed:
the p95 budget) and once in batches to ``/predict_images``. The reference is the registered pyfunc reading
the same files by path, so decoding is compared too. A failed check is a report, never an exception.

The default tolerance is looser than the tabular 1e-6: a float32 model's probabilities move in the 7th
digit with the batch they are computed in, which is no difference in behaviour.
"""

from __future__ import annotations

import logging
import mimetypes
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.release.answer_parity import MULTICLASS, compare_predictions, parity_problems
from components.release.bento_server import ServeError, check_exact_tag, serve_bento
from components.release.infra_validation import InfraReport

log = logging.getLogger(__name__)


def _upload(path: Path, field: str) -> tuple[str, tuple[str, bytes, str]]:
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return field, (path.name, path.read_bytes(), kind)


def _replay(url: str, bento_tag: str, paths: list[Path], batch_size: int) -> dict[str, Any]:
    """Every file on its own (timed), then all of them in batches of at most the bento's ``max_batch``."""
    import httpx

    out: dict[str, Any] = {"latencies_ms": [], "single": [], "batched": [], "failures": [], "requests": 0}
    with httpx.Client(base_url=url, timeout=30.0, limits=httpx.Limits(keepalive_expiry=1.0)) as client:
        metadata = client.get("/metadata").json()
        if metadata.get("bento_tag") != bento_tag:
            raise ValueError(f"{url} serves bento {metadata.get('bento_tag')!r}, not {bento_tag!r}")
        if metadata.get("kind") != "image":
            raise ValueError(f"{bento_tag} is not an image bento (metadata kind {metadata.get('kind')!r})")
        for path in paths:
            t0 = time.perf_counter()
            resp = client.post("/predict_image", files=[_upload(path, "image")])
            out["latencies_ms"].append((time.perf_counter() - t0) * 1000)
            out["requests"] += 1
            if resp.status_code == 200:
                out["single"].append(resp.json())
            else:
                out["failures"].append(f"/predict_image {path.name} {resp.status_code}: {resp.text[:200]}")
        size = max(1, min(batch_size, int(metadata.get("max_batch", batch_size))))
        for i in range(0, len(paths), size):
            out["requests"] += 1
            resp = client.post("/predict_images", files=[_upload(p, "images") for p in paths[i : i + size]])
            if resp.status_code == 200:
                out["batched"].extend(resp.json()["predictions"])
            else:
                out["failures"].append(f"/predict_images {resp.status_code}: {resp.text[:200]}")
    return out


def validate_image_bento(
    bento_tag: str,
    rows: pd.DataFrame,
    model_uri: str,
    p95_budget_ms: float,
    *,
    bentoml_home: str | None = None,
    timeout_s: float = 120,
    prob_tol: float = 1e-5,
    batch_size: int = 64,
    root: str | Path | None = None,
) -> InfraReport:
    """Serve ``bento_tag``, upload the files of ``rows["image"]`` (paths, under ``root`` when given) one by one
    and in batches, and judge the answers against ``model_uri``'s pyfunc on the same files and the
    single-image p95 against the budget."""
    import httpx
    import mlflow

    check_exact_tag(bento_tag)
    if "image" not in rows.columns:
        raise ValueError(f"rows: needs an 'image' column of file paths, got {list(rows.columns)}")
    if rows.empty:
        raise ValueError("rows: validate_image_bento needs at least one image")
    paths = [Path(p) if root is None else Path(root) / p for p in rows["image"]]
    reference = pd.DataFrame({"image": [str(p) for p in paths]})
    expected = mlflow.pyfunc.load_model(model_uri).predict(reference).reset_index(drop=True)
    base = {"bento_tag": bento_tag, "n_rows": len(paths), "p95_budget_ms": p95_budget_ms, "task": MULTICLASS}
    started = time.monotonic()
    try:
        with serve_bento(bento_tag, bentoml_home=bentoml_home, timeout_s=timeout_s) as served:
            startup_s, port = time.monotonic() - started, served.port
            replay = _replay(served.url, bento_tag, paths, batch_size)
    except (ServeError, httpx.HTTPError, ValueError, KeyError, OSError) as err:
        return InfraReport(passed=False, reason=f"serving failed: {err}", **base)
    single = compare_predictions(expected, replay["single"], task=MULTICLASS, tol=prob_tol,
                                 where="single-image request, row")  # fmt: skip
    batch = compare_predictions(expected, replay["batched"], task=MULTICLASS, tol=prob_tol, where="batch requests, row")
    p50, p95 = (float(np.percentile(replay["latencies_ms"], q)) for q in (50, 95))
    problems = []
    if failures := replay["failures"]:
        problems.append(f"{len(failures)} of {replay['requests']} requests failed (first: {failures[0]})")
    problems += parity_problems(MULTICLASS, single, batch, prob_tol)
    if p95 > p95_budget_ms:
        problems.append(f"p95 latency {p95:.1f} ms exceeds the budget of {p95_budget_ms:g} ms")
    reason = "; ".join(problems) or (
        f"{len(paths)} images: labels equal, probabilities within {prob_tol:g}, p95 {p95:.1f} ms")  # fmt: skip
    report = InfraReport(
        passed=not problems,
        reason=reason,
        n_requests=replay["requests"],
        errors=len(replay["failures"]),
        label_mismatches=single.label_mismatches + batch.label_mismatches,
        max_prob_diff=max(single.max_diff, batch.max_diff),
        p50_ms=p50,
        p95_ms=p95,
        startup_s=startup_s,
        port=port,
        **base,
    )
    log.info("infra validation of image bento %s: %s (%s)", bento_tag, "passed" if report.passed else "FAILED", reason)
    return report
