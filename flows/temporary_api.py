"""Prefect's temporary API, started by `mlops run` itself as soon as it knows there is work (issue 19).

Without ``PREFECT_API_URL`` Prefect starts a temporary API server the first time the flow needs a client:
it imports its server module in our process (about 2 s) and then blocks while the server starts (3-11 s).
`mlops run` instead starts the same server, the same way Prefect does (uvicorn on Prefect's
``create_app`` factory, UI off, on a free loopback port), right after the "nothing changed" decision (on
a project's first run, before it) and before anything imports Prefect. Then it sets ``PREFECT_API_URL``
for the rest of the process, so the server starts while the flow's modules import and the data is
validated, and every thread and child of this process reports to it, as they would to a Prefect server.

It is stopped at exit after Prefect's own exit handlers (which still send logs and events to it), and by
the run's watchdog if this process is killed. Only a process that has not imported Prefect yet can use
it: the setting must be in the environment before Prefect reads its settings.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.util
import logging
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from components.release.bento_server import free_port

log = logging.getLogger(__name__)

_PORT_TAKEN = 3  # uvicorn's exit code when it cannot bind: another port is tried
_SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}


class TemporaryAPI:
    """One Prefect API server process on 127.0.0.1, for this process only."""

    def __init__(self) -> None:
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self._start()
        atexit.register(self.stop)  # before Prefect is imported, so it runs after Prefect's exit handlers

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def _start(self) -> None:
        self.port = free_port()
        env = dict(os.environ) | _SERVER_ENV
        spec = importlib.util.find_spec("prefect")  # found, not imported
        assert spec is not None and spec.origin is not None
        site = Path(spec.origin).parent.parent  # uvicorn puts it first on the path, as Prefect does
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", str(site), "--factory",
             "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(self.port),
             "--log-level", "error", "--lifespan", "on"],
            env=env,
        )  # fmt: skip
        log.info("starting Prefect's temporary API on %s", self.url)

    def wait_ready(self) -> None:
        """Return once the API answers ``/health``; a server that exits or never answers is an error."""
        timeout_s = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "20"))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            code = self.proc.poll()
            if code == _PORT_TAKEN:  # the port was taken between our probe and its bind
                self._start()
                continue
            if code is not None:
                raise RuntimeError(f"Prefect's temporary API on port {self.port} exited with code {code} while "
                                   "starting; its own error is above")  # fmt: skip
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"Prefect's temporary API on port {self.port} did not answer within {timeout_s:.0f} s "
                           "(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)")  # fmt: skip

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        log.info("stopping Prefect's temporary API on %s", self.url)
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_running: list[TemporaryAPI] = []


def url() -> str | None:
    """The URL of the temporary API this process started, else None (a Prefect server, or Prefect's own)."""
    return _running[0].url if _running else None


@contextmanager
def started(wanted: bool) -> Iterator[TemporaryAPI | None]:
    """Start the API now and point ``PREFECT_API_URL`` at it, when ``wanted`` and Prefect is not imported yet.

    Yields the server (None when not started: Prefect then starts its own when the flow needs it).
    ``PREFECT_API_URL`` is restored on exit; the server itself stops at exit of the process.
    """
    if not wanted or "prefect" in sys.modules or os.environ.get("PREFECT_API_URL"):
        yield None
        return
    api = TemporaryAPI()
    _running.append(api)
    # The UI is off, as on Prefect's own temporary API: no "View at" link to a page that is not served.
    added = {"PREFECT_API_URL": api.url} | ({} if "PREFECT_UI_URL" in os.environ else {"PREFECT_UI_URL": ""})
    os.environ.update(added)
    try:
        yield api
    finally:
        for name in added:
            os.environ.pop(name, None)
        _running.remove(api)


@contextmanager
def flow_on_api(module: str, name: str) -> Iterator[Callable]:
    """The flow ``module.name``, imported while the temporary API starts; yielded once the API answers.

    For a command that runs one flow (`mlops predict`, `mlops monitor`): the API's start overlaps the
    flow's imports, and Prefect's own temporary server (its server module imported here, then a wait)
    is not needed. With ``PREFECT_API_URL`` set, only the import.
    """
    with started(True) as api:
        flow = getattr(importlib.import_module(module), name)
        if api is not None:
            api.wait_ready()
        yield flow
