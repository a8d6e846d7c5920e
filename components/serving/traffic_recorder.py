"""Served traffic, sampled and written to a sink for monitoring: one JSON line per recorded request.

Shipped inside each bento beside ``service.py`` as a top-level module; it imports nothing from
its neighbours, so it loads the same way from the bento and from the project
(``components.serving.traffic_recorder``, which ``components.monitoring.served`` reads with).

A line: ``{"time": ISO UTC, "model", "model_version", "bento_tag", "rows": n,
"inputs": {column: [n values]}, "predictions": [n labels or values]}`` -- the validated request,
by contract column name, and the answers the service sent.

Why not ``bentoml.monitor`` (checked on BentoML 1.4.39): its API logs one value at a time
(``log_batch`` loops over ``log``) and its default monitor formats one row per record with
python-json-logger, ~53 ms of the event loop for a 1000-record request of 30 features against
~15 ms to write the request's columns as one line here; its first write calls
``logging.config.dictConfig``, which closes every logging handler of the worker process; its
data file rotates daily and never deletes (unbounded); its timestamps are naive local time.

Cost on the request path: one ``random()`` and a non-blocking queue put when sampled, nothing
when ``sample`` is 0 (the service then builds no recorder). A daemon thread encodes and writes;
a full queue or a failed write drops the record and counts it in
``mlops_monitor_record_errors_total{reason}``: recording never fails nor holds up a request.

Size bound: each process writes its own segment files ``<UTC start>-<pid>.jsonl`` (so several
workers and servers never share a file) and starts a new one past ``segment_bytes``; at each
new segment the oldest files of the sink are deleted while it holds more than ``max_bytes``.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import logging
import os
import queue
import random
import re
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

log = logging.getLogger("mlops.traffic")

ENV_SAMPLE = "MLOPS_MONITOR_SAMPLE"  # share of requests recorded, 0..1 (mlops serve: serve.monitor_sample)
ENV_DIR = "MLOPS_MONITOR_DIR"  # the folder of sinks; the model's sink is <dir>/<model>/
ENV_MAX_MB = "MLOPS_MONITOR_MAX_MB"  # size bound of one model's sink
DEFAULT_DIR = Path("monitoring") / "served"  # relative to the project (mlops serve) or the server's cwd
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
SEGMENT_BYTES = 16 * 1024 * 1024
QUEUE_REQUESTS = 256  # requests waiting for the writer (they hold their arrays) before new ones are dropped
SUFFIX = ".jsonl"
LARGE_REQUEST_ROWS = 64  # from this many rows a line is encoded a column at a time


def _native(value: Any) -> Any:
    """numpy scalars (labels from an object array) as the Python values JSON knows."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_ENCODE = json.JSONEncoder(ensure_ascii=False, default=_native).encode


def sink_name(model: str) -> str:
    """The folder name of a model's sink: the registered model name, made safe for a path."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", str(model)).strip(".")
    if not name:
        raise ValueError(f"model name {model!r} gives no usable sink folder name")
    return name


def parse_sample(value: str | float | None, source: str = ENV_SAMPLE) -> float:
    """A sample share in [0, 1]; ``None`` or empty is 0 (off). Errors name ``source``."""
    if value is None or value == "":
        return 0.0
    try:
        share = float(value)
    except ValueError:
        raise ValueError(f"{source}: expected a share between 0 and 1, got {value!r}") from None
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"{source}: expected a share between 0 and 1, got {value!r}")
    return share


@functools.cache
def recorder_metrics() -> SimpleNamespace:
    """Created on first use: after BentoML has put the worker in prometheus multiprocess mode."""
    import prometheus_client as prom

    return SimpleNamespace(
        recorded=prom.Counter("mlops_monitor_recorded_requests", "Served requests written to the monitoring sink"),
        errors=prom.Counter(
            "mlops_monitor_record_errors",
            "Sampled requests not recorded (queue_full: the writer lags; write: the sink failed)",
            ["reason"],
        ),
    )


class TrafficRecorder:
    """Samples served requests and writes them to ``sink`` from a background thread."""

    def __init__(
        self,
        sink: Path,
        sample: float,
        *,
        model: str,
        version: str,
        bento_tag: str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        segment_bytes: int = SEGMENT_BYTES,
        queue_size: int = QUEUE_REQUESTS,
        rng: random.Random | None = None,
    ) -> None:
        self.sink, self.sample = Path(sink), parse_sample(sample, "sample")
        self.max_bytes = max_bytes
        self.segment_bytes = max(1, min(segment_bytes, max_bytes // 4))
        self._random = (rng or random.Random()).random
        self._head = {"model": model, "model_version": str(version), "bento_tag": bento_tag}
        self.metrics = recorder_metrics()
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._file: Any = None
        self._path: Path | None = None
        self._size = 0
        self._warned: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="mlops-traffic-recorder", daemon=True)
        self._thread.start()
        atexit.register(self.close)  # a worker stopping drains what it sampled

    # -- the request path ------------------------------------------------------------------
    def offer(self, columns: Mapping[str, np.ndarray], predictions: np.ndarray | list[Any]) -> bool:
        """Queue one request for writing if it is sampled; never raises, never blocks."""
        try:
            if self._random() >= self.sample:
                return False
            self._queue.put_nowait((time.time(), columns, predictions))
            return True
        except queue.Full:
            self._error("queue_full", "the writer lags behind")
        except Exception as err:  # recording must never fail a request
            self._error("offer", repr(err))
        return False

    def flush(self) -> None:
        """Block until everything queued so far is written (tests, shutdown)."""
        self._queue.join()

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is queued, stop the thread, close the file."""
        if not self._thread.is_alive():
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout_s)
        self._thread.join(timeout_s)

    # -- the writer thread -----------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    break
                self._write(self.encode(*item))
            except Exception as err:  # disk full, sink removed, an odd value
                self._error("write", repr(err))
            finally:
                self._queue.task_done()
        if self._file is not None:
            self._file.close()

    def encode(self, stamp: float, columns: Mapping[str, np.ndarray], predictions: Any) -> bytes:
        """One JSON line. A large request is encoded column by column, so the GIL can pass to the
        event loop in between; a small one in one call (each call sets up an encoder: ~3 us)."""
        values = predictions.tolist() if isinstance(predictions, np.ndarray) else list(predictions)
        record = {"time": datetime.fromtimestamp(stamp, UTC).isoformat(), **self._head, "rows": len(values)}
        if len(values) < LARGE_REQUEST_ROWS:
            inputs = {str(k): np.asarray(v).tolist() for k, v in columns.items()}
            return (_ENCODE({**record, "inputs": inputs, "predictions": values}) + "\n").encode()
        inputs = ", ".join([f"{_ENCODE(str(k))}: {_ENCODE(np.asarray(v).tolist())}" for k, v in columns.items()])
        return f'{_ENCODE(record)[:-1]}, "inputs": {{{inputs}}}, "predictions": {_ENCODE(values)}}}\n'.encode()

    def _write(self, data: bytes) -> None:
        if self._file is None or self._size >= self.segment_bytes or os.fstat(self._file.fileno()).st_nlink == 0:
            self._new_segment()  # (a file with no links was pruned by another process)
        view = memoryview(data)
        while view:  # one write() per line as a rule: a reader sees whole lines, or a torn last one
            view = view[self._file.write(view) :]
        self._size += len(data)
        self.metrics.recorded.inc()

    def _new_segment(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.sink.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self._path = self.sink / f"{stamp}-{os.getpid()}{SUFFIX}"
        self._file, self._size = open(self._path, "ab", buffering=0), 0  # noqa: SIM115 -- kept open
        self._prune()

    def _prune(self) -> None:
        """Delete the oldest files while the sink holds more than ``max_bytes`` (ours excepted)."""
        files = []
        for path in self.sink.glob(f"*{SUFFIX}"):
            with contextlib.suppress(OSError):  # another process may delete it first
                stat = path.stat()
                files.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            if path != self._path:
                with contextlib.suppress(OSError):
                    path.unlink()
                total -= size

    def _error(self, reason: str, detail: str) -> None:
        with contextlib.suppress(Exception):
            self.metrics.errors.labels(reason).inc()
        if reason not in self._warned:  # once per reason: a failing disk must not flood the log
            self._warned.add(reason)
            log.warning("served traffic not recorded (%s): %s; counted in mlops_monitor_record_errors_total", reason,
                        detail)  # fmt: skip


def recorder_from_env(
    model: str, version: str, bento_tag: str | None = None, environ: Mapping[str, str] | None = None
) -> TrafficRecorder | None:
    """The recorder ``MLOPS_MONITOR_SAMPLE`` asks for, writing to ``<MLOPS_MONITOR_DIR>/<model>/``;
    ``None`` (no cost at all) when the share is 0 or unset. A bad value stops the server at start."""
    environ = os.environ if environ is None else environ
    sample = parse_sample(environ.get(ENV_SAMPLE))
    if sample == 0.0:
        return None
    max_mb = environ.get(ENV_MAX_MB)
    try:
        max_bytes = int(float(max_mb) * 1024 * 1024) if max_mb else DEFAULT_MAX_BYTES
    except ValueError:
        raise ValueError(f"{ENV_MAX_MB}: expected a number of megabytes, got {max_mb!r}") from None
    if max_bytes <= 0:
        raise ValueError(f"{ENV_MAX_MB}: expected a positive number of megabytes, got {max_mb!r}")
    sink = Path(environ.get(ENV_DIR) or DEFAULT_DIR).absolute() / sink_name(model)
    log.info("recording %.4g%% of served requests to %s", 100 * sample, sink)
    return TrafficRecorder(sink, sample, model=model, version=version, bento_tag=bento_tag, max_bytes=max_bytes)
