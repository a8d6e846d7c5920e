"""Pure parts of infra validation; the served comparison runs in tests/e2e/test_serving.py."""

import json
import socket

import numpy as np
import pandas as pd
import psutil
import pytest

from components.release.bento_server import ServeError, check_exact_tag, free_port, serve_bento
from components.release.infra_validation import InfraReport, frame_to_records


def test_records_keep_full_precision_and_turn_missing_into_null():
    x = 0.1 + 0.2  # 0.30000000000000004: needs all 17 digits
    frame = pd.DataFrame({"a": [x, np.nan], "b": pd.array([1, None], dtype="Int64"), "c": ["p", None]})
    records = frame_to_records(frame)
    assert records == [{"a": x, "b": 1, "c": "p"}, {"a": None, "b": None, "c": None}]
    assert json.loads(json.dumps(records))[0]["a"] == x  # JSON round trip is exact, no NaN tokens


@pytest.mark.parametrize("tag", ["name", "name:latest", ":v", ""])
def test_only_exact_tags(tag):
    with pytest.raises(ValueError, match="exact bento tag"):
        check_exact_tag(tag)


def test_free_port_is_bindable_on_loopback():
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_report_is_frozen():
    report = InfraReport(passed=False, reason="x", bento_tag="a:b", n_rows=0)
    with pytest.raises(AttributeError):
        report.passed = True  # type: ignore[misc]


@pytest.mark.slow
def test_serving_an_unknown_bento_fails_with_its_log_and_leaves_nothing_running(tmp_path):
    with (
        pytest.raises(ServeError, match="not found") as err,
        serve_bento("no-such-bento:v1", bentoml_home=str(tmp_path), timeout_s=90),
    ):
        pass
    assert "exited with code" in str(err.value)
    # Anything it started carries its bento store (the other pytest worker serves bentos of its own).
    assert not [p.pid for p in psutil.process_iter() if _bentoml_home(p) == str(tmp_path)]


def _bentoml_home(proc: psutil.Process) -> str | None:
    try:
        return proc.environ().get("BENTOML_HOME")
    except psutil.Error:  # gone meanwhile, or not ours to read
        return None


def test_a_reference_that_fails_is_raised_not_reported_as_a_serving_failure(monkeypatch):
    from components.release import infra_validation

    def broken(uri, rows):
        raise ValueError(f"cannot load {uri}")

    monkeypatch.setattr(infra_validation, "_reference_answers", broken)
    rows = pd.DataFrame({"a": [1.0, 2.0]})
    with pytest.raises(ValueError, match="cannot load models:/m/1"):
        infra_validation.validate_bento("m:v1", rows, "models:/m/1", p95_budget_ms=100, url="http://127.0.0.1:9")


def test_a_server_that_cannot_be_reached_is_a_failed_report_with_the_references_task(monkeypatch):
    from components.release import infra_validation

    answers = pd.DataFrame({"value": [0.5, 1.5]})
    records = [{"a": 1.0}, {"a": 2.0}]
    monkeypatch.setattr(infra_validation, "_reference_answers", lambda uri, rows: (answers, records, "regression"))
    rows = pd.DataFrame({"a": [1.0, 2.0]})
    report = infra_validation.validate_bento("m:v1", rows, "models:/m/1", p95_budget_ms=100, url="http://127.0.0.1:9")
    assert not report.passed and report.reason.startswith("serving failed:")
    assert (report.task, report.n_rows, report.bento_tag) == ("regression", 2, "m:v1")
