"""Processes a run starts die with it, even on ``kill -9`` of the run.

With a real bento and a real ``bentoml serve`` (an arbiter plus workers in sessions of their own):
- a process holding ``serve_bento`` open from a worker thread (as a Prefect task does) is SIGKILLed;
- a whole ``mlops run`` is SIGKILLed while its infra validation serves the new bento: everything it
  started (bentoml, its workers, Prefect's temporary API server, the run's watchdog) goes too;
- the ordinary exit of ``serve_bento`` leaves nothing behind.
Every process a test records is killed in its ``finally``, pass or fail.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from components.release.process_guard import alive
from tests.conftest import FAST, ROOT, make_project

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")]
BIN = Path(sys.executable).parent
GONE_WITHIN_S = 30

BUILD = """
import json, sys
from pathlib import Path
import mlflow
from components.release import registry
from components.data.dataset import read_source
from components.release.package import build_bento
from components.serving.request_schema import schema_from_frame
from components.training.families import train_candidate

root, home = Path(sys.argv[1]), Path(sys.argv[2])
registry.configure_tracking(home, experiment="tests")
frame = read_source("sklearn:breast_cancer").sample(200, random_state=0)
X, y = frame.drop(columns="target"), frame["target"]
model = train_candidate("logreg", "sklearn_logreg", {"C": 1.0, "max_iter": 500}, X, y, seed=0)
with mlflow.start_run() as run:
    version = registry.register(registry.log_model(model, X), "kill-clf", run.info.run_id, {}).version
meta = {"model_version": version, "dataset_md5": "e2e", "git_commit": "e2e", "decision": "promote"}
tag = build_bento(registered_model="kill-clf", version=version, service_name="kill-clf", metadata=meta,
                  schema=schema_from_frame(X, list(X.columns)), constraints=root / "constraints.txt")
print(json.dumps({"tag": tag}))
"""

# Holds a served bento open from a worker thread, like a Prefect task, until it is killed.
HOLD = """
import sys, threading, time
from components.release.bento_server import serve_bento

def hold():
    with serve_bento(sys.argv[1], bentoml_home=sys.argv[2], timeout_s=180, env={"MLOPS_SERVE_WORKERS": "2"}) as s:
        print("READY", s.pid, flush=True)
        time.sleep(600)

worker = threading.Thread(target=hold)
worker.start()
worker.join()
"""


def clean_env(tmp: Path) -> dict[str, str]:
    """This environment without test-session state; a private bento store and Prefect home."""
    drop = ("PREFECT_API_URL", "PREFECT_HOME", "MLFLOW_TRACKING_URI", "BENTOML_HOME")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return env | {
        "BENTOML_HOME": str(tmp / "bentoml"),
        "PREFECT_HOME": str(tmp / "prefect"),
        "BENTOML_DO_NOT_TRACK": "true",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "GIT_PYTHON_REFRESH": "quiet",
    }


@pytest.fixture(scope="module")
def bento(tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("kill-bento")
    proc = subprocess.run(
        [sys.executable, "-c", BUILD, str(ROOT), str(home)],
        cwd=ROOT,
        env=clean_env(home),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"tag": json.loads(proc.stdout.strip().splitlines()[-1])["tag"], "home": str(home / "bentoml")}


def cmdline(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except psutil.Error:
        return "?"


def record(pid: int, seen: dict[int, tuple[psutil.Process, str]]) -> None:
    """Add ``pid``'s current descendants to ``seen`` (pid -> process, command line)."""
    try:
        procs = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return
    for p in procs:
        if p.pid not in seen:
            seen[p.pid] = (p, cmdline(p))


def is_bentoml(line: str) -> bool:
    """The guard, ``bentoml serve`` and its ``_bentoml_impl`` workers all name bentoml."""
    return "bentoml" in line


def is_arbiter(line: str) -> bool:
    return "bentoml serve" in line and "process_guard" not in line


def is_worker(line: str) -> bool:
    return "_bentoml_impl.worker" in line


def is_prefect_server(line: str) -> bool:
    """Prefect's temporary API server, which Prefect stops only in an atexit handler."""
    return "prefect.server.api.server:create_app" in line


def is_watchdog(line: str) -> bool:
    return "process_guard" in line and "--watch-descendants" in line


def still_alive(procs: list[psutil.Process], within_s: float = GONE_WITHIN_S) -> list[psutil.Process]:
    """Those of ``procs`` still alive after up to ``within_s`` seconds (zombies count as gone)."""
    deadline = time.monotonic() + within_s
    while (left := alive(procs)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def kill_recorded(seen: dict[int, tuple[psutil.Process, str]]) -> None:
    for p in alive(p for p, _ in seen.values()):
        p.kill()


def test_sigkill_of_a_process_serving_a_bento_stops_the_server_and_its_workers(bento):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, bento["tag"], bento["home"]], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    seen: dict[int, tuple[psutil.Process, str]] = {}
    try:
        line = holder.stdout.readline()  # EOF if serving failed: serve_bento gives up after 180 s
        assert line.startswith("READY"), f"serve_bento did not come up (exit code {holder.poll()})"
        record(holder.pid, seen)
        lines = [c for _, c in seen.values()]
        assert any(map(is_arbiter, lines)) and sum(map(is_worker, lines)) == 2, lines
        assert int(line.split()[1]) in seen  # ServedBento.pid is bentoml serve itself
        holder.kill()
        holder.wait()
        left = still_alive([p for p, _ in seen.values()])
        assert not left, [seen[p.pid][1] for p in left]
    finally:
        holder.kill()
        kill_recorded(seen)


def test_leaving_serve_bento_stops_everything_it_started(bento):
    from components.release.bento_server import serve_bento

    with serve_bento(bento["tag"], bentoml_home=bento["home"], timeout_s=180, env={"MLOPS_SERVE_WORKERS": "2"}) as s:
        tree = [p for p in psutil.Process().children(recursive=True) if is_bentoml(cmdline(p))]
        assert s.pid in {p.pid for p in tree} and sum(is_worker(cmdline(p)) for p in tree) == 2
        started = time.monotonic()
    print(f"serve_bento stopped its {len(tree)} processes in {time.monotonic() - started:.2f} s")
    try:
        assert alive(tree) == []  # right away: stopping waits until the whole tree is gone
    finally:
        for p in alive(tree):
            p.kill()


# Leaves the block at once (the server stops in a thread, as in `mlops run`'s infra validation) and exits.
LEAVE_IN_BACKGROUND = """
import json, sys, threading, psutil
from components.release.bento_server import serve_bento

with serve_bento(sys.argv[1], bentoml_home=sys.argv[2], timeout_s=180, stop_in_background=True) as s:
    tree = [p.pid for p in psutil.Process().children(recursive=True)]
stopper = [t for t in threading.enumerate() if t.name == "stop-bentoml-serve"]
print(json.dumps({"tree": tree, "daemon": [t.daemon for t in stopper]}), flush=True)
"""


def test_a_process_that_stops_its_server_in_the_background_exits_only_once_it_is_gone(bento):
    done = subprocess.run([sys.executable, "-c", LEAVE_IN_BACKGROUND, bento["tag"], bento["home"]], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.splitlines()[-1])
    procs = [psutil.Process(pid) for pid in out["tree"] if psutil.pid_exists(pid)]
    try:
        assert out["tree"] and out["daemon"] == [False]  # a thread the interpreter waits for at exit
        assert alive(procs) == []  # right as the process is gone, so is its server
    finally:
        for p in alive(procs):
            p.kill()


def test_kill_9_of_mlops_run_during_infra_validation_leaves_nothing_it_started(tmp_path):
    project = make_project(tmp_path / "project")
    cmd = [str(BIN / "mlops"), "--params", str(project / "params.yaml"), "run"]
    cmd += [arg for kv in FAST for arg in ("--set", kv)]
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        run = subprocess.Popen(
            cmd, cwd=project, env=clean_env(tmp_path), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    seen: dict[int, tuple[psutil.Process, str]] = {}
    try:
        # Until bentoml serve runs with a worker: infra validation has started. A run takes ~1-2 min here.
        deadline, arbiter_seen_at = time.monotonic() + 900, None
        while True:
            record(run.pid, seen)
            arbiters = [p for p, c in seen.values() if is_arbiter(c) and alive([p])]
            if arbiters and arbiter_seen_at is None:
                arbiter_seen_at = time.monotonic()
            if arbiters and (any(alive(arbiters[0].children())) or time.monotonic() - arbiter_seen_at > 120):
                break
            if run.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-4000:]
                pytest.fail(f"mlops run (exit {run.poll()}) never reached infra validation:\n{tail}")
            time.sleep(0.2)
        record(run.pid, seen)
        killed_at = time.monotonic()
        run.kill()  # the run only, as `kill -9 <pid>` would
        run.wait()

        lines = [c for _, c in seen.values()]
        assert any(map(is_arbiter, lines)) and any(map(is_worker, lines)), lines
        assert any(map(is_prefect_server, lines)) and any(map(is_watchdog, lines)), lines
        left = still_alive([p for p, _ in seen.values()])
        assert not left, [seen[p.pid][1][:200] for p in left]
        print(f"the {len(seen)} processes mlops run had started were gone {time.monotonic() - killed_at:.1f} s after")
    finally:
        run.kill()
        kill_recorded(seen)
