"""components.release.process_guard with a stand-in server: a leader whose worker runs in a session of its own.

And its ``--watch-descendants`` mode with a stand-in for the ``mlops`` CLI. The real ``bentoml serve``
and ``mlops run`` are in tests/e2e/test_kill.py; these run in seconds.
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

from components.release.bento_server import stop_server
from components.release.process_guard import alive, guarded_command, main

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
from components.release.process_guard import guarded_command
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
    root = Path(__file__).resolve().parents[2]
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
        # The starting thread ends once it has seen the guard's child: it polls, so the server may write
        # its pids first (a race the fresh-clone suite met under load); give it a few seconds to end.
        deadline = time.monotonic() + 10
        while psutil.Process(caller.pid).num_threads() > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
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


# A stand-in for the `mlops` CLI: it starts its watchdog (scanning every argv[2] seconds), then a child
# whose grandchild runs in a session of its own, and (with "stubborn") a child in a session of its
# own with an empty environment, so without the token, that ignores SIGTERM. Then, by argv[1]: "kill"
# waits to be killed, "leave" exits at once leaving them all, "exec" execs a program that exits after
# 3 s; "clean" instead runs one short child to its end and exits.
WATCHED = """
import json, os, subprocess, sys, time
from components.release.process_guard import start_watchdog
mode, scan, stubborn = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "stubborn"
watchdog = start_watchdog(grace_s=1, scan_s=scan)
assert start_watchdog() is watchdog  # once per process
pids = {"watchdog": watchdog.pid}
py, sleep = sys.executable, "import time; time.sleep(600)"
if mode == "clean":
    subprocess.run([py, "-c", "pass"], check=True)
elif mode == "finishing":  # a child that ends 0.3 s after our pipe to it closes, as the validation child does
    finishing = "import sys, time; sys.stdin.read(); time.sleep(0.3)"
    pids["child"] = subprocess.Popen([py, "-c", finishing], stdin=subprocess.PIPE).pid
else:
    grandchild = f"subprocess.Popen([sys.executable, '-c', {sleep!r}], start_new_session=True).pid"
    starter = f"import subprocess, sys; print({grandchild}, flush=True); {sleep}"
    child = subprocess.Popen([py, "-c", starter], stdout=subprocess.PIPE, text=True)
    pids |= {"child": child.pid, "grandchild": int(child.stdout.readline())}
if stubborn:
    ignore = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    pids["stubborn"] = subprocess.Popen([py, "-c", ignore + sleep], env={}, start_new_session=True).pid
    time.sleep(5 * scan)  # a few scans
print(json.dumps(pids), flush=True)
if mode == "kill":
    time.sleep(600)
elif mode == "exec":
    os.execv(py, [py, "-c", "import time; time.sleep(3)"])
"""


def start_watched(mode: str, scan_s: float, stubborn: bool = False) -> tuple[subprocess.Popen, dict[str, int]]:
    root = Path(__file__).resolve().parents[2]
    args = [mode, str(scan_s), "stubborn" if stubborn else "-"]
    parent = subprocess.Popen([sys.executable, "-c", WATCHED, *args], cwd=root, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    line = parent.stdout.readline()
    assert line, f"the stand-in failed (exit code {parent.wait()})"
    return parent, json.loads(line)


@pytest.mark.parametrize("mode", ["kill", "leave"])
def test_the_watchdog_stops_everything_its_parent_left_however_it_ended(mode):
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # not the parent's
    parent, pids = start_watched(mode, scan_s=0.2, stubborn=True)
    family = [psutil.Process(pid) for pid in pids.values()]
    try:
        assert len(alive(family)) == 4  # watchdog, child, grandchild, stubborn
        if mode == "kill":
            parent.kill()
        assert parent.wait(timeout=30) == (-signal.SIGKILL if mode == "kill" else 0)
        assert gone_within(family, 20) == []  # the watchdog too
        assert alive([psutil.Process(bystander.pid)])
    finally:
        kill_quietly(family)
        parent.kill()
        bystander.kill()


def test_the_watchdog_knows_processes_started_since_its_last_scan():
    """Started after the only scan: found by the token they inherited (TOKEN_VAR)."""
    parent, pids = start_watched("kill", scan_s=600)
    family = [psutil.Process(pid) for pid in pids.values()]
    try:
        parent.kill()
        parent.wait()
        assert gone_within(family, 20) == []
    finally:
        kill_quietly(family)
        parent.kill()


def test_a_clean_exit_leaves_nothing_and_the_watchdog_exits_at_once():
    parent, pids = start_watched("clean", scan_s=0.2)
    watchdog = psutil.Process(pids["watchdog"])
    try:
        assert parent.wait(timeout=30) == 0
        assert gone_within([watchdog], 2) == []
    finally:
        kill_quietly([watchdog])


def test_a_child_on_its_way_out_is_not_reported_as_left_behind():
    """A clean `mlops run` exit whose validation child ends just after it: nothing to stop, nothing said."""
    parent, pids = start_watched("finishing", scan_s=0.2)
    family = [psutil.Process(pid) for pid in pids.values()]
    try:
        assert parent.wait(timeout=30) == 0
        assert gone_within(family, 5) == []
        assert "stopping what it left" not in parent.stderr.read()  # the watchdog writes to our stderr
    finally:
        kill_quietly(family)


def test_the_watchdog_leaves_a_parent_that_execs_alone():
    """Like `mlops serve`, which execs bentoml: same pid, so the parent is not gone."""
    parent, pids = start_watched("exec", scan_s=0.2)
    family = [psutil.Process(pid) for pid in pids.values()]
    try:
        time.sleep(1.5)  # the exec happened; several scans
        assert psutil.Process(parent.pid).cmdline()[-1] == "import time; time.sleep(3)"
        assert len(alive(family)) == 3
        assert parent.wait(timeout=30) == 0  # the exec'd program ends: now the parent is gone
        assert gone_within(family, 20) == []
    finally:
        kill_quietly(family)
        parent.kill()


def test_watch_descendants_takes_no_command(capsys):
    with pytest.raises(SystemExit):
        main(["--parent", "1", "--watch-descendants", "--", "sleep", "1"])
    assert "takes no command" in capsys.readouterr().err
