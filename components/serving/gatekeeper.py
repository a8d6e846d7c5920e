"""The service's ASGI middleware: API key, request-body limits, rejection and latency metrics.

Shipped inside each bento beside ``service.py`` as a top-level module; it imports
nothing from its neighbours, so it loads the same way from the bento and from the
project (``components.serving.gatekeeper``, as the unit tests do). Also holds the
error response (one format for every 4xx, ``{"error", "field", "status"}``, as ``api_document``
declares it) and the labelled-series lookup the service uses on its own path.
"""

from __future__ import annotations

import functools
import hmac
import json
import os
import time
from collections.abc import Collection
from types import SimpleNamespace
from typing import Any

from starlette.responses import Response

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

_ENCODE = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps builds an encoder per call


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(_ENCODE(body), status_code=status, media_type="application/json", headers=headers)


def error_response(
    status: int, error: str, field: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    """A 4xx in the one format every route answers with: what is wrong, which field, the status."""
    return json_response(status, {"error": error, "field": field, "status": status}, headers)


@functools.cache
def request_metrics() -> SimpleNamespace:
    """Our per-request Prometheus series, created on first use: after BentoML has put the
    worker in prometheus multiprocess mode, so ``/metrics`` aggregates them over all workers."""
    import prometheus_client as prom  # not at import: its value class is fixed by the mode then

    return SimpleNamespace(
        rejected=prom.Counter("mlops_rejected_requests", "Requests answered 4xx", ["endpoint", "reason"]),
        latency=prom.Histogram(
            "mlops_request_latency_seconds",
            "Prediction request latency",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
        ),
    )


@functools.cache
def labelled(metric: Any, *labels: str) -> Any:
    """A labelled series, looked up once (``labels()`` is slow enough to show on the hot path)."""
    return metric.labels(*labels)


def _reason(status: int) -> str:
    reasons = {400: "invalid", 401: "unauthorized", 411: "no_length", 413: "too_large", 415: "media_type"}
    return reasons.get(status, str(status))


def refuse_body(headers: dict[bytes, bytes], max_body_bytes: int) -> tuple[int, dict[str, str]] | None:
    """JSON with a Content-Length within the limit only (BentoML's other decoders can 500)."""
    media_type = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
    if media_type != b"application/json":
        return 415, {
            "error": f"content-type {media_type.decode(errors='replace')!r}: send application/json",
            "field": "content-type",
        }
    length = headers.get(b"content-length", b"")
    if not length.isdigit():
        return 411, {"error": "send the body with a Content-Length header", "field": "content-length"}
    if int(length) > max_body_bytes:
        return 413, {"error": f"records: request body exceeds {max_body_bytes} bytes", "field": "records"}
    return None


class Gatekeeper:
    """ASGI middleware: API key, request-size limit, rejection and latency metrics.

    ``api_paths`` are measured and size-checked; ``open_paths`` (health probes) need no
    key. The key is ``MLOPS_API_KEY`` (infrastructure, not the bento): none set, none asked.
    """

    def __init__(
        self, app: Any, *, api_paths: Collection[str], open_paths: Collection[str], max_body_bytes: int
    ) -> None:
        self.app = app
        self.api_paths, self.open_paths, self.max_body_bytes = (
            frozenset(api_paths),
            frozenset(open_paths),
            max_body_bytes,
        )
        self.key = os.environ.get("MLOPS_API_KEY", "").encode()

    def refuse(self, path: str, headers: dict[bytes, bytes]) -> tuple[int, dict[str, str]] | None:
        """(status, {error, field}) for a body this API never reads, before it is read: JSON within the limit."""
        return refuse_body(headers, self.max_body_bytes)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        endpoint = path if path in self.api_paths else "other"
        headers = dict(scope["headers"])
        if (
            self.key
            and path not in self.open_paths
            and not hmac.compare_digest(headers.get(b"x-api-key", b""), self.key)
        ):
            labelled(request_metrics().rejected, endpoint, "unauthorized").inc()
            refusal = error_response(401, "missing or wrong x-api-key header", "x-api-key")
            return await refusal(scope, receive, send)
        if endpoint == "other":
            return await self.app(scope, receive, send)
        method = scope["method"]
        if method not in ("POST", "OPTIONS"):  # OPTIONS: a CORS preflight, if BentoML's CORS is enabled
            labelled(request_metrics().rejected, endpoint, _reason(405)).inc()
            refusal = error_response(405, f"{method} {path}: send POST", None, {"Allow": "POST"})
            return await refusal(scope, receive, send)
        if method == "POST" and (refusal := self.refuse(path, headers)):
            labelled(request_metrics().rejected, endpoint, _reason(refusal[0])).inc()
            status, body = refusal
            return await error_response(status, body["error"], body["field"])(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def send_and_watch(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            labelled(request_metrics().latency, endpoint).observe(time.perf_counter() - start)
            if 400 <= status[0] < 500:
                labelled(request_metrics().rejected, endpoint, _reason(status[0])).inc()
