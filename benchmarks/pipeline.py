"""Full pipeline (`mlops run`) vs a plain script doing the same ML, side by side: cold, then warm.

Cold means a fresh MLflow SQLite store, a fresh Prefect home and a fresh bento store. Warm re-runs in the
same project: nothing changed (the run is skipped: nothing trained or registered), and a change no fit reads
(`serve.max_batch`: every fit comes from Prefect's cache, the rest of the pipeline runs). Prints wall time and
peak RSS (whole process tree) and appends the table to benchmarks/RESULTS.md. Usage:

    .venv/bin/python benchmarks/pipeline.py [--repeat 1]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import append_results, load_average, run_measured  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def fresh_project(tmp: Path) -> Path:
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    rows = []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            project = fresh_project(Path(tmp))
            env = dict(
                os.environ,
                PREFECT_HOME=str(Path(tmp) / "prefect-home"),
                BENTOML_HOME=str(Path(tmp) / "bentoml"),
                PYTHONWARNINGS="ignore",
            )
            env.pop("MLFLOW_TRACKING_URI", None)
            env.pop("PREFECT_API_URL", None)
            plain = run_measured(
                [sys.executable, str(ROOT / "benchmarks" / "plain_baseline.py"), "params.yaml"],
                cwd=project,
                env=env,
            )
            mlops = [str(BIN / "mlops"), "run"]
            runs = {
                "mlops run, cold": run_measured(mlops, cwd=project, env=env),
                "mlops run, warm, nothing changed (skipped)": run_measured(mlops, cwd=project, env=env),
                "mlops run, warm, serve.max_batch changed (fits cached)": run_measured(
                    [*mlops, "--set", "serve.max_batch=500"], cwd=project, env=env
                ),
            }
            with prefect_server(Path(tmp), env) as api_url:  # production: the API is already up
                server_env = dict(env, PREFECT_API_URL=api_url)
                run_measured(mlops, cwd=project, env=server_env)  # the first run on a server records its flow
                runs["mlops run, warm, nothing changed, on a running Prefect server"] = run_measured(
                    mlops, cwd=project, env=server_env
                )
            rows.append((i + 1, plain, runs))
    lines = [
        "| run | what | wall (s) | peak RSS (MiB) | ratio to plain |",
        "|---|---|---|---|---|",
    ]
    for i, plain, runs in rows:
        failed = {name: m[2] for name, m in {"plain": plain, **runs}.items() if m[2]}
        if failed:
            raise SystemExit(f"a run failed (exit codes): {failed}")
        lines.append(f"| {i} | plain script | {plain[0]:.1f} | {plain[1]:.0f} | 1.00x |")
        for name, (wall, rss, _) in runs.items():
            lines.append(f"| {i} | {name} | {wall:.1f} | {rss:.0f} | {wall / plain[0]:.2f}x |")
    table = "\n".join(lines)
    print(table)
    load = load_average()
    notes = f"Load average at the end (1, 5, 15 min): {load}. Targets: cold <= 4x, warm re-run <= 1.5x plain."
    append_results("benchmarks/pipeline.py: full pipeline vs plain script", table, notes)


if __name__ == "__main__":
    main()
