"""What a user reads when `mlops run` refuses their data: the reason, not our tracebacks.

A real `mlops run` process (its own Prefect temporary API, GX validation in its child process) on a file the
contract rejects. Prefect's engines log the failure of the validation task and of the flow; for an error the
user caused those lines keep the message (rule, column, report) and lose the forty-line tracebacks.
A bug keeps its traceback (the unit test beside the filter checks that side).
"""

import logging
import os
import subprocess
import sys

import pandas as pd
import pytest

from components.data.contract import ContractError
from components.validation.report import DataRejectedError
from flows.runtime import quiet_completed_task_runs
from tests.conftest import ROOT, make_project


@pytest.mark.slow
def test_a_rejected_file_prints_the_reason_without_a_traceback(tmp_path):
    project = make_project(tmp_path / "project")
    bad = pd.read_parquet(project / "data" / "dataset.parquet")
    bad.loc[:10, "mean radius"] = -5.0
    bad.to_csv(tmp_path / "bad.csv", index=False)
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI")}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "BENTOML_HOME": str(tmp_path / "bentoml")}

    proc = subprocess.run([sys.executable, "-m", "flows.cli.main", "--params", str(project / "params.yaml"), "run",
                           "--data", str(tmp_path / "bad.csv")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip

    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out[-3000:]
    assert "Traceback" not in out and "_RemoteTraceback" not in out, out
    engine_lines = [line for line in out.splitlines() if "ERROR prefect." in line]
    assert len(engine_lines) >= 2 and all("DataRejectedError" in line for line in engine_lines), out
    assert "data rejected: data rejected by contract 'breast-cancer-classifier': range on 'mean radius'" in proc.stderr


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize(
    ("error", "traceback_kept"),
    [
        (DataRejectedError.__new__(DataRejectedError), False),
        (ContractError("columns.age.dtype: 'number' is not one of float, int"), False),
        (RuntimeError("a bug"), True),
        (KeyError("mean radius"), True),
    ],
)
def test_only_user_errors_lose_their_traceback(error, traceback_kept):
    quiet_completed_task_runs()
    quiet_completed_task_runs()  # idempotent: one filter of each kind
    logger, kept = logging.getLogger("prefect.task_runs"), _Kept()
    assert len(logger.filters) == len({type(f) for f in logger.filters})
    logger.addHandler(kept)
    try:
        try:
            raise error
        except Exception:
            logger.error("Task run failed with exception: %r", "x", exc_info=True)
    finally:
        logger.removeHandler(kept)
    (record,) = kept.records
    assert (record.exc_info is not None) is traceback_kept
    assert record.getMessage().startswith("Task run failed with exception")
