"""`mlops run` starts Prefect's temporary API itself, before Prefect is imported (issue 19).

A real Prefect API server in a fresh interpreter (the launcher refuses a process that has imported Prefect,
as pytest's has): it answers, Prefect's client in that process uses it, and it is gone after the exit.
"""

import json
import os
import subprocess
import sys

import psutil
import pytest

from flows import temporary_api
from tests.conftest import ROOT

USE = """
import json, os, sys, urllib.request
from flows import temporary_api

with temporary_api.started(True) as api:
    assert "prefect" not in sys.modules
    url = os.environ["PREFECT_API_URL"]
    api.wait_ready()
    from prefect import flow
    from prefect.settings import get_current_settings

    @flow(name="temporary-api-check")
    def check():
        return get_current_settings().api.url

    seen = check()
    with urllib.request.urlopen(f"{url}/health") as resp:
        health = resp.status
    print(json.dumps({"url": url, "seen": seen, "health": health, "pid": api.proc.pid,
                      "ui_url": get_current_settings().ui_url, "module_url": temporary_api.url()}), flush=True)
print(json.dumps({"after": os.environ.get("PREFECT_API_URL")}), flush=True)
"""


@pytest.mark.slow
def test_the_run_uses_the_api_it_started_and_stops_it_at_exit(tmp_path):
    env = {k: x for k, x in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_UI_URL")}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", USE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    inside, after = (json.loads(line) for line in done.stdout.splitlines()[-2:])
    assert inside["url"].startswith("http://127.0.0.1:") and inside["url"].endswith("/api")
    assert inside["seen"] == inside["url"] == inside["module_url"]  # the flow ran against it, not a second server
    assert inside["health"] == 200
    assert inside["ui_url"] == ""  # no "View at" link: the temporary API serves no UI
    assert after == {"after": None}  # the variable is the block's only
    assert "Starting temporary server" not in done.stderr  # Prefect did not start one of its own
    assert not psutil.pid_exists(inside["pid"]) or psutil.Process(inside["pid"]).status() == psutil.STATUS_ZOMBIE


def test_not_started_when_not_wanted_or_prefect_is_imported_or_a_server_is_set(monkeypatch):
    """Each guard on its own: none of these cases may start a server or set the variable."""
    import prefect  # noqa: F401  (imported, as in every test process)

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with temporary_api.started(True) as api:  # this process has imported Prefect: too late to point it elsewhere
        assert api is None and "PREFECT_API_URL" not in os.environ
    monkeypatch.delitem(sys.modules, "prefect")  # as in a fresh `mlops` process (restored after the test)
    with temporary_api.started(False) as api:
        assert api is None and "PREFECT_API_URL" not in os.environ
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # a Prefect server is the user's
    with temporary_api.started(True) as api:
        assert api is None and os.environ["PREFECT_API_URL"] == "http://127.0.0.1:9/api"
    assert temporary_api.url() is None


def test_a_server_that_exits_while_starting_is_a_clear_error(monkeypatch):
    api = temporary_api.TemporaryAPI.__new__(temporary_api.TemporaryAPI)
    api.port = 9
    api.proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])
    api.proc.wait()
    with pytest.raises(RuntimeError, match="temporary API on port 9 exited with code 1 while starting"):
        api.wait_ready()


def test_a_project_without_an_mlflow_store_is_a_first_run(tmp_path, monkeypatch):
    from flows.cli.main import _first_run

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert _first_run(tmp_path)  # `mlops run` then starts the API before the nothing-changed answer
    (tmp_path / "mlflow.db").touch()
    assert not _first_run(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert not _first_run(tmp_path / "elsewhere")  # a tracking server may hold finished versions


FLOW_MODULE = """
import sys
from prefect import flow
from prefect.settings import get_current_settings

@flow(name="flow-on-api-check")
def check():
    return get_current_settings().api.url
"""

USE_FLOW = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
from flows import temporary_api

with temporary_api.flow_on_api("flow_on_api_check", "check") as check:
    seen = check()
    print(json.dumps({"seen": seen, "started": temporary_api.url(), "pid": temporary_api._running[0].proc.pid}))
"""


@pytest.mark.slow
def test_predict_and_monitor_run_their_flow_on_the_api_they_started(tmp_path):
    """`mlops predict` and `mlops monitor` use ``flow_on_api``: the flow's module imports while our API starts,
    the flow runs against that API, and Prefect starts no temporary server of its own."""
    (tmp_path / "flow_on_api_check.py").write_text(FLOW_MODULE)
    env = {k: x for k, x in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_UI_URL")}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", USE_FLOW, str(tmp_path)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["started"] and out["seen"] == out["started"]  # the flow ran against the API flow_on_api started
    assert "Starting temporary server" not in done.stderr
    assert not psutil.pid_exists(out["pid"]) or psutil.Process(out["pid"]).status() == psutil.STATUS_ZOMBIE


def test_flow_on_api_with_a_server_set_only_imports_the_flow(monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # a server of the user's: nothing started
    with temporary_api.flow_on_api("flows.monitoring", "monitor") as monitor:
        from flows.monitoring import monitor as imported

        assert monitor is imported and temporary_api.url() is None
