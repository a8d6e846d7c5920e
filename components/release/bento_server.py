"""``bentoml serve`` of one exact bento tag, started and stopped by us: the one way we start it.

Exact tag, 127.0.0.1, a free port, its own session, under ``process_guard`` (so it dies with us even on
``kill -9``), always stopped. Infra validation, the image check, the tests and the benchmarks use it.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


class ServeError(RuntimeError):
    """``bentoml serve`` did not come up; the message holds the end of its log."""


@dataclass(frozen=True)
class ServedBento:
    url: str
    port: int
    pid: int
    log_path: Path


def check_exact_tag(bento_tag: str) -> None:
    """Refuse ``name`` and ``name:latest``: what we validate must be what we deploy."""
    name, _, version = bento_tag.partition(":")
    if not name or not version or version == "latest":
        raise ValueError(f"need an exact bento tag 'name:version', got {bento_tag!r}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bentoml_command() -> list[str]:
    """The ``bentoml`` CLI of this interpreter's environment."""
    exe = Path(sys.executable).parent / "bentoml"
    return [str(exe)] if exe.exists() else [shutil.which("bentoml") or "bentoml"]


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


GUARD_GRACE_S = 10.0  # the guard's SIGTERM-to-SIGKILL wait; bentoml serve stops in ~1 s


def stop_server(proc: subprocess.Popen, grace_s: float = GUARD_GRACE_S + 5) -> None:
    """SIGTERM ``proc`` (the guard, or a bare server) and wait; then SIGKILL anything left of its tree.

    The guard stops ``bentoml serve`` (which stops its workers) and escalates to SIGKILL by itself
    within ``GUARD_GRACE_S``; the kills here are for a guard that could not.
    """
    from components.release.process_guard import descendants, kill_all

    family = descendants(proc.pid)  # now: workers run in sessions of their own and may be orphaned later
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            log.warning("pid %d ignored SIGTERM for %g s; killing its tree", proc.pid, grace_s)
            with suppress(ProcessLookupError, PermissionError):  # not reaped yet, so the group id is still ours
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    if left := kill_all(family):
        log.warning("could not stop pids %s of bentoml serve", [p.pid for p in left])


def _served_pid(guard: subprocess.Popen) -> int:
    """The pid of ``bentoml serve`` itself (the guard's first child), the pid callers know it by."""
    import psutil

    with suppress(psutil.Error):
        if children := psutil.Process(guard.pid).children():
            return min(children, key=lambda p: p.create_time()).pid
    return guard.pid


@contextmanager
def serve_bento(
    bento_tag: str,
    *,
    bentoml_home: str | None = None,
    timeout_s: float = 120,
    env: dict[str, str] | None = None,
    stop_in_background: bool = False,
) -> Iterator[ServedBento]:
    """Run ``bentoml serve <exact tag>`` on a free 127.0.0.1 port until the block exits.

    The server runs under ``components.release.process_guard``, which stops its whole tree (workers
    included) if this process dies without getting to the ``finally``, even by SIGKILL. With
    ``stop_in_background`` the block exits while the server stops (about a second), in a thread that the
    interpreter waits for at exit, so the process never leaves before the server is gone.
    """
    import httpx

    from components.release.process_guard import guarded_command

    check_exact_tag(bento_tag)
    port = free_port()
    child_env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true", **(env or {})}
    if bentoml_home:
        child_env["BENTOML_HOME"] = str(bentoml_home)
    log_fd, log_name = tempfile.mkstemp(prefix="bentoml-serve-", suffix=".log")
    cmd = [*bentoml_command(), "serve", bento_tag, "--host", "127.0.0.1", "--port", str(port)]
    # Own session: a Ctrl-C in the terminal reaches only us, and we stop the server in order.
    proc = subprocess.Popen(
        guarded_command(cmd, grace_s=GUARD_GRACE_S),
        stdout=log_fd,
        stderr=subprocess.STDOUT,
        env=child_env,
        start_new_session=True,
    )
    os.close(log_fd)
    url, log_path = f"http://127.0.0.1:{port}", Path(log_name)
    try:
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as client:
            while True:
                if proc.poll() is not None:
                    raise ServeError(f"bentoml serve exited with code {proc.returncode}:\n{_tail(log_path)}")
                try:
                    if client.get(f"{url}/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise ServeError(f"{bento_tag} not ready after {timeout_s:.0f} s:\n{_tail(log_path)}")
                time.sleep(0.25)
        pid = _served_pid(proc)
        log.info("serving %s at %s (pid %d, guard %d)", bento_tag, url, pid, proc.pid)
        yield ServedBento(url=url, port=port, pid=pid, log_path=log_path)
    finally:
        if stop_in_background:
            threading.Thread(target=_stop_and_forget, args=(proc, log_path), name="stop-bentoml-serve").start()
        else:
            _stop_and_forget(proc, log_path)


def _stop_and_forget(proc: subprocess.Popen, log_path: Path) -> None:
    stop_server(proc)
    log_path.unlink(missing_ok=True)
