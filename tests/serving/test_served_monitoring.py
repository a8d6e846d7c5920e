"""Served-traffic recording and reading, no server: the service's recorder writes a sink, the
monitoring's ``read_served`` reads it back (versions, ``since``, torn lines, size bound, errors)."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client import REGISTRY

from components.monitoring.served import read_served, served_records, served_sink, served_versions
from components.serving import traffic_recorder as tr
from components.serving.request_schema import RequestValidator, schema_from_frame
from tests.data.task_frames import wine_frame

ROOT = Path(__file__).resolve().parents[2]
CULTIVARS = ["barolo", "grignolino", "barbera"]


@pytest.fixture(scope="module")
def requests_frame() -> pd.DataFrame:
    """What clients send: wine measurements, a text region with blanks, an id, a whole-number column."""
    frame = wine_frame(seed=1).drop(columns="cultivar").head(60).reset_index(drop=True)
    frame["order_id"] = [f"ord-{i:05d}" for i in range(len(frame))]
    frame["magnesium"] = frame["magnesium"].astype("int64")
    return frame


@pytest.fixture(scope="module")
def validator(requests_frame) -> RequestValidator:
    schema = schema_from_frame(requests_frame, list(requests_frame.columns))
    for spec in schema["features"]:
        if spec["name"] == "magnesium":
            spec["dtype"] = "int"
    return RequestValidator(schema, max_batch=100)


def _records(frame: pd.DataFrame) -> list[dict]:
    from components.release.infra_validation import frame_to_records

    return frame_to_records(frame)


def _answers(n: int, seed: int) -> list[str]:
    return random.Random(seed).choices(CULTIVARS, k=n)


def _recorder(sink: Path, version: str, **kwargs) -> tr.TrafficRecorder:
    return tr.TrafficRecorder(sink, 1.0, model="wine", version=version, bento_tag=f"wine:v{version}", **kwargs)


def _counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _serve(recorder, validator, frame: pd.DataFrame, sizes: list[int], seed: int) -> list[str]:
    """Offer requests of ``sizes`` rows from ``frame`` as the service does; the answers sent."""
    sent, start = [], 0
    for k, size in enumerate(sizes):
        columns = validator(_records(frame.iloc[start : start + size]))
        answers = _answers(size, seed + k)
        assert recorder.offer(columns, answers)
        sent += answers
        start += size
    recorder.flush()
    return sent


def test_read_served_returns_what_two_versions_served(tmp_path, requests_frame, validator):
    sink = served_sink(tmp_path, "wine")
    first, second = _recorder(sink, "1"), _recorder(sink, "2")
    try:
        sent = _serve(first, validator, requests_frame.iloc[:30], [1, 1, 10, 18], seed=0)
        sent += _serve(second, validator, requests_frame.iloc[30:], [25, 5], seed=10)
    finally:
        first.close()
        second.close()

    inputs, predictions = read_served(sink)

    expected = requests_frame.astype({"region": object})
    pd.testing.assert_frame_equal(inputs.astype({"region": object}), expected, check_dtype=False)
    assert inputs["magnesium"].dtype == "int64" and inputs["region"].isna().sum() == expected["region"].isna().sum()
    assert predictions.name == "prediction" and predictions.tolist() == sent
    assert predictions.index.equals(inputs.index)
    assert served_versions(sink) == {"1": 30, "2": 30}
    v2_inputs, v2_predictions = read_served(sink, version="2")
    assert v2_inputs["order_id"].tolist() == requests_frame["order_id"].iloc[30:].tolist()
    assert v2_predictions.tolist() == sent[30:]
    record = served_records(sink)[0]
    head = {k: record[k] for k in ("model", "model_version", "bento_tag", "rows")}
    assert head == {"model": "wine", "model_version": "1", "bento_tag": "wine:v1", "rows": 1}
    assert datetime.fromisoformat(record["time"]).tzinfo is not None


def test_since_keeps_later_requests_naive_means_utc(tmp_path, requests_frame, validator):
    sink = tmp_path / "sink"
    recorder = _recorder(sink, "3")
    try:
        _serve(recorder, validator, requests_frame.iloc[:10], [10], seed=0)
        time.sleep(0.02)
        cut = datetime.now(UTC)
        time.sleep(0.02)
        later = _serve(recorder, validator, requests_frame.iloc[10:14], [2, 2], seed=5)
    finally:
        recorder.close()

    for since in (cut, cut.replace(tzinfo=None), cut.astimezone(timezone(timedelta(hours=-5)))):
        inputs, predictions = read_served(sink, since)
        assert inputs["order_id"].tolist() == requests_frame["order_id"].iloc[10:14].tolist()
        assert predictions.tolist() == later
    inputs, predictions = read_served(sink, datetime.now(UTC) + timedelta(minutes=1))
    assert inputs.empty and predictions.empty and len(inputs) == len(predictions) == 0


def test_a_torn_last_line_is_skipped_and_a_bad_middle_line_is_named(tmp_path, requests_frame, validator, caplog):
    sink = tmp_path / "sink"
    recorder = _recorder(sink, "1")
    try:
        sent = _serve(recorder, validator, requests_frame.iloc[:6], [3, 3], seed=0)
    finally:
        recorder.close()
    (path,) = sink.glob("*.jsonl")
    whole = path.read_text()
    first, rest = whole.split("\n", 1)
    path.write_text(first + "\n" + "{not json\n" + rest + first[: len(first) // 2])  # a writer stopped mid-line

    with caplog.at_level(logging.DEBUG, logger="components.monitoring.served"):
        inputs, predictions = read_served(sink)

    assert predictions.tolist() == sent and len(inputs) == 6
    ours = [r for r in caplog.records if r.name == "components.monitoring.served"]  # not other tests' loggers
    assert [r.getMessage() for r in ours if r.levelno >= logging.WARNING] == [f"{path}:2: not a JSON record, skipped"]


def test_malformed_records_are_skipped_with_a_reason(tmp_path, caplog):
    sink = tmp_path / "sink"
    sink.mkdir()
    good = {"time": "2026-12-01T10:00:00+00:00", "inputs": {"a": [1, 2]}, "predictions": ["x", "y"]}
    lines = [good, {**good, "predictions": ["x"]}, {**good, "time": "yesterday"}, [1, 2], {"inputs": {}}]
    (sink / "x.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    with caplog.at_level(logging.WARNING, logger="components.monitoring.served"):
        inputs, predictions = read_served(sink)
    assert inputs["a"].tolist() == [1, 2] and predictions.tolist() == ["x", "y"]
    assert len([r for r in caplog.records if r.name == "components.monitoring.served"]) == 4
    assert "does not hold 1 values" in caplog.text and "'yesterday' is not an ISO timestamp" in caplog.text


def test_no_sink_is_an_error_naming_it_and_the_params_key(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing.*|serve\.monitor_sample") as err:
        read_served(tmp_path / "never")
    assert str(tmp_path / "never") in str(err.value)


def test_sink_is_a_folder_per_model_under_the_project(tmp_path):
    assert served_sink(tmp_path, "churn-model") == tmp_path / "monitoring" / "served" / "churn-model"
    assert served_sink(tmp_path, "team/churn model").name == "team-churn-model"
    with pytest.raises(ValueError, match="'..'"):
        served_sink(tmp_path, "..")


def test_sampling_zero_builds_no_recorder_one_records_all_a_share_records_that_share(tmp_path, validator):
    assert tr.recorder_from_env("wine", "1", environ={}) is None
    assert tr.recorder_from_env("wine", "1", environ={tr.ENV_SAMPLE: "0", tr.ENV_DIR: str(tmp_path)}) is None
    assert not (tmp_path / "wine").exists()
    for bad in ("abc", "1.5", "-0.1"):
        with pytest.raises(ValueError, match=tr.ENV_SAMPLE):
            tr.recorder_from_env("wine", "1", environ={tr.ENV_SAMPLE: bad})
    with pytest.raises(ValueError, match=tr.ENV_MAX_MB):
        tr.recorder_from_env("wine", "1", environ={tr.ENV_SAMPLE: "1", tr.ENV_MAX_MB: "lots"})

    env = {tr.ENV_SAMPLE: "1", tr.ENV_DIR: str(tmp_path)}
    recorder = tr.recorder_from_env("wine", "7", environ=env)
    assert recorder.sink == tmp_path / "wine" and recorder.sample == 1.0
    recorder.close()

    columns = {"a": np.arange(2.0)}
    half = tr.TrafficRecorder(tmp_path / "half", 0.5, model="wine", version="1", rng=random.Random(42))
    try:
        taken = sum(half.offer(columns, ["x", "y"]) for _ in range(400))
        half.flush()
    finally:
        half.close()
    draws = random.Random(42)
    assert taken == sum(draws.random() < 0.5 for _ in range(400))  # seeded: exactly the draws below 0.5
    assert len(served_records(tmp_path / "half")) == taken and 150 < taken < 250


class _StuckRecorder(tr.TrafficRecorder):
    """A writer that waits until released: the queue fills as it would behind a slow disk."""

    def __init__(self, *args, **kwargs):
        self.release = threading.Event()
        super().__init__(*args, **kwargs)

    def _write(self, data: bytes) -> None:
        self.release.wait(10)
        super()._write(data)


def test_a_full_queue_drops_and_counts_without_blocking(tmp_path):
    before = _counter("mlops_monitor_record_errors_total", reason="queue_full")
    recorder = _StuckRecorder(tmp_path / "sink", 1.0, model="wine", version="1", queue_size=2)
    columns = {"a": np.arange(3.0)}
    try:
        # A blocking offer would wait for the stuck writer and accept all ten: drops prove it did not.
        offered = [recorder.offer(columns, [1, 2, 3]) for _ in range(10)]
        recorder.release.set()
        recorder.flush()
    finally:
        recorder.close()
    dropped = offered.count(False)
    assert 7 <= dropped <= 8  # 2 queued, plus the one the writer holds if it took it already
    assert _counter("mlops_monitor_record_errors_total", reason="queue_full") - before == dropped
    assert len(served_records(tmp_path / "sink")) == 10 - dropped


def test_a_failing_sink_is_counted_and_the_offer_still_succeeds(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    before = _counter("mlops_monitor_record_errors_total", reason="write")
    recorder = tr.TrafficRecorder(blocked / "sink", 1.0, model="wine", version="1")
    try:
        assert recorder.offer({"a": np.arange(2.0)}, ["x", "y"])
        recorder.flush()
    finally:
        recorder.close()
    assert _counter("mlops_monitor_record_errors_total", reason="write") - before == 1


def test_the_sink_stays_within_its_size_bound_and_keeps_the_newest(tmp_path, requests_frame, validator):
    sink = tmp_path / "sink"
    recorder = _recorder(sink, "1", max_bytes=20_000, segment_bytes=4_000)
    columns = validator(_records(requests_frame.iloc[:3]))
    line = len(recorder.encode(time.time(), columns, ["barolo"] * 3))
    try:
        for _ in range(200):
            recorder.offer(columns, ["barolo"] * 3)
            recorder.flush()
            total = sum(p.stat().st_size for p in sink.glob("*.jsonl"))
            assert total <= 20_000 + recorder.segment_bytes + line
    finally:
        recorder.close()
    assert len(list(sink.glob("*.jsonl"))) > 1
    kept = served_records(sink)
    assert 0 < len(kept) < 200 and len(read_served(sink)[0]) == 3 * len(kept)


def test_a_segment_deleted_under_the_writer_is_replaced(tmp_path):
    sink = tmp_path / "sink"
    recorder = tr.TrafficRecorder(sink, 1.0, model="wine", version="1")
    try:
        recorder.offer({"a": np.arange(2.0)}, ["x", "y"])
        recorder.flush()
        (path,) = sink.glob("*.jsonl")
        path.unlink()  # another server pruned it
        recorder.offer({"a": np.arange(3.0)}, ["x", "y", "z"])
        recorder.flush()
    finally:
        recorder.close()
    assert [r["rows"] for r in served_records(sink)] == [3]


def test_every_offered_request_is_recorded_and_counted(tmp_path, requests_frame, validator):
    before = _counter("mlops_monitor_recorded_requests_total")
    recorder = _recorder(tmp_path / "sink", "1", queue_size=10_000)
    columns = validator(_records(requests_frame))
    answers = _answers(len(requests_frame), 0)
    try:
        for _ in range(2000):
            recorder.offer(columns, answers)
        recorder.flush()
    finally:
        recorder.close()
    assert _counter("mlops_monitor_recorded_requests_total") - before == 2000


def test_mlops_serve_passes_the_sample_and_the_project_sink(tmp_path, monkeypatch, capsys):
    import shutil

    from flows.cli import serve as cli_serve
    from flows.cli.main import main

    for name in ("params.yaml", "constraints.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "contracts", tmp_path / "contracts")
    params = tmp_path / "params.yaml"
    params.write_text(params.read_text().replace("monitor_sample: 0.0", "monitor_sample: 0.25", 1))
    for key in (tr.ENV_SAMPLE, tr.ENV_DIR):
        monkeypatch.delenv(key, raising=False)  # restored after the test: cmd_serve exports them
    calls = []
    monkeypatch.setattr(cli_serve.os, "execvp", lambda file, argv: calls.append((argv, dict(cli_serve.os.environ))))

    assert main(["--params", str(params), "serve", "--tag", "wine:abc123", "--model", "wine"]) == 0

    (argv, env), out = calls[0], capsys.readouterr().out
    assert argv[-6:-4] == ["serve", "wine:abc123"]
    assert (env[tr.ENV_SAMPLE], env[tr.ENV_DIR]) == ("0.25", str(tmp_path / "monitoring" / "served"))
    assert f"recording 25% of requests to {served_sink(tmp_path, 'wine')}" in out


def test_large_and_small_requests_encode_the_same_record(tmp_path, requests_frame, validator, monkeypatch):
    recorder = _recorder(tmp_path / "sink", "1")
    try:
        columns, answers = validator(_records(requests_frame)), _answers(len(requests_frame), 3)
        stamp = time.time()
        small = recorder.encode(stamp, columns, answers)
        monkeypatch.setattr(tr, "LARGE_REQUEST_ROWS", 2)
        large = recorder.encode(stamp, columns, np.array(answers, dtype=object))
    finally:
        recorder.close()
    assert large.endswith(b"\n") and large.count(b"\n") == 1
    assert json.loads(large) == json.loads(small)
    assert json.loads(large)["inputs"]["region"].count(None) == requests_frame["region"].isna().sum()
