"""flows.child_process: a step body in a spawned child, its imports kept out of the caller."""

from __future__ import annotations

import os
import sys

import pandas as pd
import pytest

from components.validation.report import DataRejectedError, ValidationReport
from flows.child_process import ChildProcess


def _pid_and_modules(names: tuple[str, ...]) -> tuple[int, dict[str, bool]]:
    return os.getpid(), {n: n in sys.modules for n in names}


def _row_count(frame: pd.DataFrame) -> int:
    return len(frame)


def _reject() -> None:
    raise DataRejectedError(
        ValidationReport(success=False, n_rows=3, n_quarantined=0, quarantine_fraction=0.0, results=()), "report.html"
    )


def test_the_call_runs_in_another_process_that_holds_the_warm_imports_the_caller_never_loads():
    assert "tabnanny" not in sys.modules  # a stdlib module nothing in the suite imports
    child = ChildProcess(warm=("tabnanny",))
    pid, loaded = child.call(_pid_and_modules, ("tabnanny",))
    assert pid != os.getpid()
    assert loaded == {"tabnanny": True}
    assert "tabnanny" not in sys.modules


def test_arguments_and_results_cross_by_value():
    frame = pd.DataFrame({"a": range(1000), "b": ["x"] * 1000})
    assert ChildProcess().call(_row_count, frame) == 1000


def test_the_child_is_gone_once_the_call_returned():
    import psutil

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    child = ChildProcess()
    pid, _ = child.call(_pid_and_modules, ())
    assert pid not in before
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_an_exception_in_the_child_is_raised_in_the_caller_with_its_type_and_message():
    with pytest.raises(DataRejectedError, match="report.html"):
        ChildProcess().call(_reject)


def test_a_child_that_is_never_called_is_stopped_by_the_context_manager():
    with ChildProcess() as child:
        pass
    with pytest.raises(RuntimeError):  # shut down: no call is accepted any more
        child.call(_row_count, pd.DataFrame())
