"""Served traffic as the monitoring reads it: the inputs and answers the service recorded.

The service writes (``components/serving/traffic_recorder.py``, shipped inside each bento) one
JSON line per sampled request into ``<project>/monitoring/served/<model>/*.jsonl`` when
``serve.monitor_sample`` > 0; this module finds that folder and reads it back as frames.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from components.serving.traffic_recorder import DEFAULT_DIR, SUFFIX, sink_name

log = logging.getLogger(__name__)

PREDICTION = "prediction"  # the name of the predictions Series: a label, or a value for regression


def served_root(root: Path) -> Path:
    """The folder of every model's sink under the project ``root`` (``MLOPS_MONITOR_DIR`` of `mlops serve`)."""
    return Path(root) / DEFAULT_DIR


def served_sink(root: Path, model: str) -> Path:
    """Where `mlops serve` makes the service of registered model ``model`` record its traffic."""
    return served_root(root) / sink_name(model)


def _utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC (the records' clock)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _lines(path: Path) -> Iterator[tuple[int, datetime, dict[str, Any]]]:
    """The records of one file. A torn last line (a writer stopped mid-line, or still writing) is
    skipped quietly; an unreadable line elsewhere is skipped with a warning naming it."""
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    complete = text.endswith("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines) and not complete:
                log.debug("%s:%d: torn last line skipped", path, number)
            else:
                log.warning("%s:%d: not a JSON record, skipped", path, number)
            continue
        problem = _problem(record)
        if problem:
            log.warning("%s:%d: %s, skipped", path, number, problem)
            continue
        yield number, _utc(datetime.fromisoformat(record["time"])), record


def _problem(record: Any) -> str | None:
    """Why ``record`` is not a served-traffic record, or None."""
    if not isinstance(record, dict) or not {"time", "inputs", "predictions"} <= record.keys():
        return "not a served-traffic record (needs time, inputs, predictions)"
    if not isinstance(record["inputs"], dict) or not isinstance(record["predictions"], list):
        return "inputs must be an object of columns and predictions a list"
    n = len(record["predictions"])
    if any(not isinstance(values, list) or len(values) != n for values in record["inputs"].values()):
        return f"an inputs column does not hold {n} values, as predictions do"
    try:
        datetime.fromisoformat(record["time"])
    except (TypeError, ValueError):
        return f"time {record['time']!r} is not an ISO timestamp"
    return None


def served_records(sink: Path, since: datetime | None = None, *, version: str | None = None) -> list[dict[str, Any]]:
    """The recorded requests in ``sink`` (oldest first), at or after ``since``, of model ``version`` if given."""
    sink = Path(sink)
    if not sink.is_dir():
        raise FileNotFoundError(
            f"{sink}: no served traffic recorded here; serve with serve.monitor_sample > 0 in params.yaml (mlops serve)"
        )
    start = _utc(since) if since is not None else None
    found = []
    for path in sorted(sink.glob(f"*{SUFFIX}")):
        try:
            if start is not None and datetime.fromtimestamp(path.stat().st_mtime, UTC) < start:
                continue  # last written before `since`: every record in it is older
            for number, stamp, record in _lines(path):
                wanted = version is None or str(record.get("model_version")) == version
                if wanted and (start is None or stamp >= start):
                    found.append((stamp, path.name, number, record))
        except FileNotFoundError:  # pruned by the writer while we read
            continue
    return [record for *_, record in sorted(found, key=lambda item: item[:3])]


def read_served(
    sink: Path, since: datetime | None = None, *, version: str | None = None
) -> tuple[pd.DataFrame, pd.Series]:
    """``(inputs, predictions)`` the service recorded in ``sink``: the inputs by contract column name,
    one row per served record, and the answers (label, or value for regression) aligned with them.

    ``since`` keeps requests served at or after it (naive = UTC); ``version`` keeps one model version's.
    Columns a version did not have are blank in the other versions' rows. Empty frames when nothing matches.
    """
    records = served_records(sink, since, version=version)
    columns: dict[str, list[Any]] = {}
    predictions: list[Any] = []
    for record in records:
        n = len(record["predictions"])
        for name in record["inputs"]:
            columns.setdefault(name, [None] * len(predictions))
        for name, values in columns.items():
            values.extend(record["inputs"].get(name, [None] * n))
        predictions.extend(record["predictions"])
    inputs = pd.DataFrame(columns, index=pd.RangeIndex(len(predictions)))
    return inputs, pd.Series(predictions, index=inputs.index, name=PREDICTION, dtype=None if predictions else object)


def served_versions(sink: Path, since: datetime | None = None) -> dict[str, int]:
    """Rows recorded per model version (say, to read only the champion's traffic)."""
    counts: dict[str, int] = {}
    for record in served_records(sink, since):
        key = str(record.get("model_version"))
        counts[key] = counts.get(key, 0) + len(record["predictions"])
    return counts
