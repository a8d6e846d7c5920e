"""components.process_guard with a stand-in server: a leader whose worker runs in a session of its own.

The real ``bentoml serve`` is in tests/e2e/test_kill.py; these run in seconds.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from components.infra_validation import stop_server
from components.process_guard import alive, guarded_command

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kill tests use Linux /proc")

# Like bentoml serve: the worker gets its own session; on SIGTERM the leader stops it, then exits.
# With "stubborn", both ignore SIGTERM.
FAKE_SERVER = """
import json, signal, subprocess, sys, time
out, stubborn = sys.argv[1], sys.argv[2] == "stubborn"
body = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n" if stubborn else "import time\\n"
worker = subprocess.Popen([sys.executable, "-c", body + "time.sleep(600)"], start_new_session=True)
def stop(*_):
    worker.terminate(); worker.wait(); sys.exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN if stubborn else stop)
with open(out + ".tmp", "w") as f:
    json.dump({"server": __import__("os").getpid(), "worker": worker.pid}, f)
__import__("os").replace(out + ".tmp", out)
time.sleep(600)
"""

# A caller that starts the guarded server from the main thread or from a worker thread, then
# either keeps that thread alive (a running Prefect task) or lets it end ("thread-exits") once
# the guard has armed its parent-death signal (it does so before starting its command).
CALLER = """
import subprocess, sys, threading, time
import psutil
from components.process_guard import guarded_command
mode, grace, cmd = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
def start():
    guard = subprocess.Popen(guarded_command(cmd, grace_s=grace), start_new_session=True)
    while not psutil.Process(guard.pid).children():
        time.sleep(0.05)
    if mode == "thread":
        time.sleep(600)
if mode == "main":
    start()
else:
    threading.Thread(target=start, daemon=True).start()
time.sleep(600)
"""


def fake_server(out: Path, stubborn: bool = False) -> list[str]:
    return [sys.executable, "-c", FAKE_SERVER, str(out), "stubborn" if stubborn else "polite"]


def wait_for(path: Path, timeout_s: float = 60) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} not written within {timeout_s} s"
        time.sleep(0.05)
    return json.loads(path.read_text())


def gone_within(procs: list[psutil.Process], timeout_s: float) -> list[int]:
    """Pids still alive after up to ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while alive(procs) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p.pid for p in alive(procs)]


def below(pid: int, *extra: int) -> list[psutil.Process]:
    """``pid``'s descendants and ``extra`` (a worker in its own session leaves the tree once orphaned)."""
    procs = {p.pid: p for p in psutil.Process(pid).children(recursive=True)}
    procs.update((e, psutil.Process(e)) for e in extra if e not in procs)
    return list(procs.values())


def kill_quietly(procs: list[psutil.Process]) -> None:
    for p in alive(procs):
        p.kill()


def start_caller(mode: str, cmd: list[str], grace_s: float = 5.0) -> subprocess.Popen:
    root = Path(__file__).resolve().parents[1]
    return subprocess.Popen([sys.executable, "-c", CALLER, mode, str(grace_s), *cmd], cwd=root)


@pytest.mark.parametrize("mode", ["main", "thread"])
def test_sigkill_of_the_caller_takes_the_whole_tree_with_it(tmp_path, mode):
    caller = start_caller(mode, fake_server(tmp_path / "pids.json"))
    tree: list[psutil.Process] = []
    try:
        pids = wait_for(tmp_path / "pids.json")
        tree = below(caller.pid, pids["worker"])
        assert {pids["server"], pids["worker"]} <= {p.pid for p in tree}
        caller.kill()
        caller.wait()
        assert gone_within(tree, 20) == []
    finally:
        kill_quietly(tree)
        caller.kill()


def test_the_thread_that_started_the_guard_may_end_while_the_caller_lives(tmp_path):
    """PR_SET_PDEATHSIG fires when the forking *thread* ends: the guard must not stop the server then."""
    caller = start_caller("thread-exits", fake_server(tmp_path / "pids.json"))
    tree: list[psutil.Process] = []
    try:
        pids = wait_for(tmp_path / "pids.json")
        tree = below(caller.pid, pids["worker"])
        assert psutil.Process(caller.pid).num_threads() == 1  # the starting thread has ended
        time.sleep(3)  # several of the guard's parent checks
        assert len(alive(tree)) == len(tree) == 3  # guard, server, worker
        caller.kill()  # and the guard still notices the real death afterwards
        caller.wait()
        assert gone_within(tree, 20) == []
    finally:
        kill_quietly(tree)
        caller.kill()


def test_a_tree_that_ignores_sigterm_is_killed_after_the_grace(tmp_path):
    caller = start_caller("main", fake_server(tmp_path / "pids.json", stubborn=True), grace_s=1)
    tree: list[psutil.Process] = []
    try:
        pids = wait_for(tmp_path / "pids.json")
        tree = below(caller.pid, pids["worker"])
        caller.kill()
        caller.wait()
        assert gone_within(tree, 20) == []
    finally:
        kill_quietly(tree)
        caller.kill()


def test_when_the_command_dies_its_orphans_go_too_and_the_guard_dies_the_same_way(tmp_path):
    guard = subprocess.Popen(guarded_command(fake_server(tmp_path / "pids.json")))
    worker = None
    try:
        pids = wait_for(tmp_path / "pids.json")
        worker = psutil.Process(pids["worker"])
        os.kill(pids["server"], signal.SIGKILL)  # its worker is orphaned; the guard (a subreaper) adopts it
        assert guard.wait(timeout=30) == -signal.SIGKILL
        assert gone_within([worker], 10) == []
    finally:
        guard.kill()
        kill_quietly([worker] if worker else [])


def test_exit_code_passes_through():
    assert subprocess.run(guarded_command([sys.executable, "-c", "raise SystemExit(3)"]), timeout=60).returncode == 3


def test_refuses_to_start_for_a_parent_that_is_not_its_parent(tmp_path):
    marker = tmp_path / "ran"
    cmd = guarded_command([sys.executable, "-c", f"open({str(marker)!r}, 'w')"], parent=1)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "parent 1 is gone" in proc.stderr
    assert not marker.exists()


def test_guarded_command_needs_a_command():
    with pytest.raises(ValueError, match="needs a command"):
        guarded_command([])


def test_stop_server_stops_guard_server_and_worker(tmp_path):
    guard = subprocess.Popen(guarded_command(fake_server(tmp_path / "pids.json")), start_new_session=True)
    tree: list[psutil.Process] = []
    try:
        pids = wait_for(tmp_path / "pids.json")
        tree = [psutil.Process(guard.pid), *psutil.Process(guard.pid).children(recursive=True)]
        assert {pids["server"], pids["worker"]} <= {p.pid for p in tree}
        stop_server(guard)
        assert guard.returncode == 0  # the server stopped on SIGTERM, cleanly
        assert alive(tree) == []  # stop_server returns only once all are gone
    finally:
        kill_quietly(tree)
        guard.kill()


def test_stop_server_kills_a_tree_that_ignores_sigterm(tmp_path):
    guard = subprocess.Popen(
        guarded_command(fake_server(tmp_path / "pids.json", stubborn=True), grace_s=1), start_new_session=True
    )
    tree: list[psutil.Process] = []
    try:
        wait_for(tmp_path / "pids.json")
        tree = [psutil.Process(guard.pid), *psutil.Process(guard.pid).children(recursive=True)]
        stop_server(guard, grace_s=30)
        assert alive(tree) == []
    finally:
        kill_quietly(tree)
        guard.kill()
