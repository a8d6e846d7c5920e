"""Full pipeline (`mlops run`) vs a plain script doing the same job, side by side, in one sitting (issue 19).

The plain baseline is benchmarks/plain_pipeline.py: load, basic checks, a seeded 60/20/20 split, logistic
regression + HistGradientBoosting + an MLP, choose on validation ROC-AUC, score the test split, log to MLflow
(SQLite) and register the winner. `mlops run` runs with params.yaml as it is (infra validation on), Prefect's
temporary API (no PREFECT_API_URL) and the default data (`mlops ingest`). Three cases, each run by both, the
two interleaved so that the machine's load falls on both alike:

- cold: a fresh project (fresh MLflow store, fresh Prefect home, fresh bento store);
- nothing changed: the same command again in the same project (the plain script has no cache: it re-does all);
- param changed: one candidate's param (hgb's learning_rate 0.1 -> 0.05) changed;
- param changed again: the same param again (0.05 -> 0.07), the next step of a tweaking loop.

Prints wall time (min / median / max over --repeat), peak RSS of the process tree and the ratios of the
medians to plain against issue 19's targets, and appends the tables to benchmarks/RESULTS.md. Usage:

    .venv/bin/python benchmarks/pipeline.py [--repeat 1] [--logs DIR] [--server]

--logs keeps every run's console output (for the run's own timestamps); --server adds a nothing-changed run
against a standing Prefect server (production, where the API is already up).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import psutil  # noqa: E402
from _measure import append_results, load_average, run_measured  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def fresh_project(tmp: Path) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    for name in ("params.yaml", "constraints.txt"):
        shutil.copy(ROOT / name, tmp / name)
    shutil.copytree(ROOT / "contracts", tmp / "contracts")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    run_measured([str(BIN / "mlops"), "ingest"], cwd=tmp, env=env)
    return tmp


@contextlib.contextmanager
def prefect_server(tmp: Path, env: dict[str, str]):
    """A Prefect server on a free loopback port for the block; stopped after it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    log = (tmp / "prefect-server.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/api"
        for _ in range(240):
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/health", timeout=5) as resp:
                if resp.status == 200:
                    break
            time.sleep(1)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


# "param changed again": the next tweak of the same loop. The first change after a cold run validates
# afresh (its drift reference became the new champion's data); from the second on, validation is reused.
CASES = ("cold", "nothing changed", "param changed", "param changed again")
TARGETS = {"cold": 2.5, "nothing changed": 0.8, "param changed": 1.7, "param changed again": 1.7}  # wall vs plain
RSS_TARGET = 1.5
CHANGED_LR = 0.05  # hgb's learning_rate, 0.1 in params.yaml and in the plain script
CHANGED_AGAIN_LR = 0.07


def run_logged(cmd: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> tuple[float, float, int]:
    """As _measure.run_measured (wall seconds, peak tree RSS in MiB, exit code), the output kept in ``log``."""
    start = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        root = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            total = 0
            with contextlib.suppress(psutil.Error):
                for p in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total += p.memory_info().rss
            peak = max(peak, total)
            time.sleep(0.05)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        print(f"{' '.join(cmd[-3:])} failed ({proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
    return wall, peak / 2**20, proc.returncode


def code_snapshot(tmp: Path) -> Path:
    """A copy of the project's code taken once, first on PYTHONPATH for every run of the sitting.

    The code hash is part of a run's fingerprint: in a working tree that others edit while this runs (a
    shared machine), "nothing changed" would otherwise retrain because a file elsewhere in `components` moved.
    """
    code = tmp / "code"
    for package in ("components", "flows"):
        shutil.copytree(ROOT / package, code / package, ignore=shutil.ignore_patterns("__pycache__"))
    return code


def one_sitting(
    tmp: Path, code: Path, logs: Path, i: int, server: bool
) -> dict[tuple[str, str], tuple[float, float, int]]:
    """Both implementations through the three cases, interleaved, in a fresh project; (impl, case) -> measure."""
    project = fresh_project(tmp)
    env = dict(
        os.environ,
        PREFECT_HOME=str(tmp / "prefect-home"),
        BENTOML_HOME=str(tmp / "bentoml"),
        PYTHONWARNINGS="ignore",
        PYTHONPATH=str(code),
    )
    for name in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "PREFECT_LOGGING_LEVEL"):
        env.pop(name, None)
    plain = [sys.executable, str(ROOT / "benchmarks" / "plain_pipeline.py"), "--store", "plain-mlflow"]
    mlops = [str(BIN / "mlops"), "run"]
    commands = {
        "cold": (plain, mlops),
        "nothing changed": (plain, mlops),
        "param changed": (
            [*plain, "--hgb-learning-rate", str(CHANGED_LR)],
            [*mlops, "--set", f"train.candidates.hgb.learning_rate={CHANGED_LR}"],
        ),
        "param changed again": (
            [*plain, "--hgb-learning-rate", str(CHANGED_AGAIN_LR)],
            [*mlops, "--set", f"train.candidates.hgb.learning_rate={CHANGED_AGAIN_LR}"],
        ),
    }
    out = {}
    for case, (plain_cmd, mlops_cmd) in commands.items():
        for impl, cmd in (("plain", plain_cmd), ("mlops run", mlops_cmd)):
            log = logs / f"{i}-{impl.replace(' ', '_')}-{case.replace(' ', '_')}.log"
            out[impl, case] = run_logged(cmd, cwd=project, env=env, log=log)
            print(f"repeat {i}, {impl}, {case}: {out[impl, case][0]:.1f} s, {out[impl, case][1]:.0f} MiB", flush=True)
    if server:
        with prefect_server(tmp, env) as api_url:  # production: the API is already up
            server_env = dict(env, PREFECT_API_URL=api_url)
            run_measured(mlops, cwd=project, env=server_env)  # the first run on a server records its flow
            out["mlops run", "nothing changed, standing Prefect server"] = run_measured(
                mlops, cwd=project, env=server_env
            )
    return out


def spread(values: list[float]) -> str:
    return " / ".join(f"{x:.1f}" for x in (min(values), statistics.median(values), max(values)))


def tables(results: list[dict[tuple[str, str], tuple[float, float, int]]]) -> str:
    def values(impl: str, case: str, k: int) -> list[float]:
        return [r[impl, case][k] for r in results if (impl, case) in r]

    lines = [
        "| case | plain wall (s) min / median / max | `mlops run` wall (s) min / median / max | wall vs plain "
        "(median) | target | plain peak RSS (MiB) | `mlops run` peak RSS (MiB) | RSS vs plain | target |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for case in CASES:
        pw, mw = values("plain", case, 0), values("mlops run", case, 0)
        pr, mr = values("plain", case, 1), values("mlops run", case, 1)
        ratio, rss = statistics.median(mw) / statistics.median(pw), statistics.median(mr) / statistics.median(pr)
        lines.append(
            f"| {case} | {spread(pw)} | {spread(mw)} | {ratio:.2f}x | <= {TARGETS[case]}x "
            f"{'met' if ratio <= TARGETS[case] else 'MISSED'} | {statistics.median(pr):.0f} | "
            f"{statistics.median(mr):.0f} | {rss:.2f}x | <= {RSS_TARGET}x {'met' if rss <= RSS_TARGET else 'MISSED'} |"
        )
    extra = values("mlops run", "nothing changed, standing Prefect server", 0)
    if extra:
        pw = values("plain", "nothing changed", 0)
        lines.append(
            f"| nothing changed, standing Prefect server | {spread(pw)} | {spread(extra)} | "
            f"{statistics.median(extra) / statistics.median(pw):.2f}x | - | | | | |"
        )
    lines += ["", "| repeat | " + " | ".join(f"{impl}, {case}: wall (s), RSS (MiB)" for case in CASES
                                              for impl in ("plain", "mlops run")) + " |"]  # fmt: skip
    lines.append("|---" * (1 + 2 * len(CASES)) + "|")
    for i, r in enumerate(results, 1):
        cells = [f"{r[impl, case][0]:.1f}, {r[impl, case][1]:.0f}" for case in CASES for impl in ("plain", "mlops run")]
        lines.append(f"| {i} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--logs", type=Path, default=None, help="keep each run's console output here")
    parser.add_argument("--server", action="store_true", help="add a run against a standing Prefect server")
    parser.add_argument("--no-append", action="store_true", help="print only, leave RESULTS.md alone")
    args = parser.parse_args()
    load_start = load_average()
    results = []
    with tempfile.TemporaryDirectory() as sitting:
        code = code_snapshot(Path(sitting))
        for i in range(1, args.repeat + 1):
            with tempfile.TemporaryDirectory() as tmp:
                logs = args.logs.resolve() if args.logs else Path(tmp) / "logs"
                logs.mkdir(parents=True, exist_ok=True)
                results.append(one_sitting(Path(tmp) / "project", code, logs, i, args.server))
    failed = {f"{impl}, {case}": m[2] for r in results for (impl, case), m in r.items() if m[2]}
    if failed:
        raise SystemExit(f"a run failed (exit codes): {failed}")
    table = tables(results)
    print(table)
    notes = (
        f"Command: `.venv/bin/python benchmarks/pipeline.py --repeat {args.repeat}`. Interleaved per case: plain, "
        "then `mlops run`; each repeat in a fresh project. Param changed: `--set "
        f"train.candidates.hgb.learning_rate={CHANGED_LR}` (plain: `--hgb-learning-rate {CHANGED_LR}`). "
        "The code is a snapshot taken at the start (first on PYTHONPATH). "
        "Peak RSS is of the whole process tree (servers and children included). Load average (1, 5, 15 min): "
        f"{load_start} at the start, {load_average()} at the end, on a shared machine."
    )
    if not args.no_append:
        append_results("benchmarks/pipeline.py: `mlops run` vs the plain baseline (issue 19)", table, notes)


if __name__ == "__main__":
    main()
