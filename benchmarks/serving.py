"""Serving throughput: our bento vs Flask+gunicorn vs `mlflow models serve`, loaded with wrk.

    .venv/bin/python benchmarks/serving.py [--family sklearn_logreg] [--duration 10]

Trains one model on the full breast-cancer set, registers it in a temporary MLflow store
and builds its bento in a temporary BENTOML_HOME, then for each server: 1-record requests
at 32 connections, then 256-record requests (wrk, lua body). In-process ``pyfunc.predict``
is the ceiling. Prints a table and appends it to benchmarks/RESULTS.md with the machine.
Targets (issue 5): bento single req/s >= 1.5x Flask's with p99 <= 50 ms and no errors;
bento batch rows/s >= 50% of in-process 256-row predict.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
log = logging.getLogger("bench.serving")
BATCH = 256
CONNECTIONS = 32
PARAMS = {
    "sklearn_logreg": {"C": 1.0, "max_iter": 1000},
    "sklearn_hgb": {"learning_rate": 0.1, "max_iter": 200, "max_leaf_nodes": 31},
    "torch_mlp": {"hidden": [64, 32], "epochs": 40, "lr": 0.001, "batch_size": 32},
}
WRK_LUA = """
local f = io.open(os.getenv("WRK_BODY"), "r"); local body = f:read("*a"); f:close()
wrk.method = "POST"; wrk.body = body; wrk.headers["Content-Type"] = "application/json"
function done(s, latency, requests)
  io.write(string.format("RESULT %d %d %d %.3f %.3f %.3f\\n", s.requests,
    s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout, s.errors.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, s.duration / 1e6))
end
"""
FLASK_APP = """
import os, mlflow, pandas as pd
from flask import Flask, jsonify, request
model = mlflow.pyfunc.load_model(os.environ["MODEL_PATH"])
app = Flask(__name__)

@app.get("/health")
def health():
    return {"status": "ok"}

@app.post("/predict")
def predict():
    out = model.predict(pd.DataFrame(request.get_json()["records"]))
    return jsonify({"predictions": out.to_dict("records")})
"""


def build(workdir: Path, family: str) -> tuple[str, str, pd.DataFrame]:
    """Train, register, build the bento; return (bento tag, local pyfunc path, features frame)."""
    import mlflow

    from components import registry
    from components.data import read_source
    from components.package import build_bento
    from components.request_schema import schema_from_frame
    from components.train import train_candidate

    registry.configure_tracking(workdir)
    frame = read_source("sklearn:breast_cancer")
    X, y = frame.drop(columns="target"), frame["target"]
    model = train_candidate("bench", family, PARAMS[family], X, y, seed=0)
    with mlflow.start_run() as run:
        uri = registry.log_model(model, X)
    version = registry.register(uri, "bench", run.info.run_id, {}).version
    meta = {"model_version": version, "dataset_md5": "bench", "git_commit": "bench", "decision": "bench"}
    tag = build_bento(
        registered_model="bench",
        version=version,
        service_name="bench-clf",
        metadata=meta,
        schema=schema_from_frame(X, list(X.columns)),
        constraints=ROOT / "constraints.txt",
    )
    return tag, mlflow.artifacts.download_artifacts(uri, dst_path=str(workdir / "pyfunc")), X


def in_process(model_path: str, X, seconds: float = 3.0) -> dict[str, float]:
    """The ceiling: pyfunc.predict in this process on 1-row and 256-row frames."""
    import mlflow

    model = mlflow.pyfunc.load_model(model_path)
    out = {}
    for rows in (1, BATCH):
        frame = X.sample(rows, replace=rows > len(X), random_state=0)
        model.predict(frame)
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            model.predict(frame)
            calls += 1
        out[rows] = calls * rows / (time.perf_counter() - start)
    return out


def wrk(url: str, body_path: Path, duration: int, lua: Path) -> dict[str, float]:
    cmd = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{duration}s", "--timeout", "30s", "-s", str(lua), url]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "WRK_BODY": str(body_path)})
    match = re.search(r"RESULT (\S+) (\S+) (\S+) (\S+) (\S+) (\S+)", out.stdout)
    if not match:
        raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")
    n, socket_errors, non2xx, p50, p99, secs = (float(v) for v in match.groups())
    return {"req_s": n / secs, "p50": p50, "p99": p99, "errors": int(socket_errors + non2xx)}


@contextmanager
def process(cmd: list[str], health_url: str, cwd: Path, env: dict[str, str], timeout_s: float = 180):
    """A server subprocess in its own session, up until the block exits."""
    import httpx

    from components.infra_validation import stop_server

    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # mlflow execs `uvicorn`
    with (cwd / f"{Path(cmd[0]).name}.log").open("w") as logfile:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env={**os.environ, **env, "PATH": path},
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(health_url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{cmd[0]} did not start; see {cwd / Path(cmd[0]).name}.log")
            time.sleep(0.5)
        yield
    finally:
        stop_server(proc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="sklearn_logreg", choices=sorted(PARAMS))
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary stores and server logs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    workdir = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    os.environ.update(
        {
            "BENTOML_HOME": str(workdir / "bentoml"),
            "BENTOML_DO_NOT_TRACK": "true",
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            "GIT_PYTHON_REFRESH": "quiet",
        }
    )
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    from components.infra_validation import frame_to_records, free_port, serve_bento

    log.info("building the model and bento in %s", workdir)
    tag, model_path, X = build(workdir, args.family)
    records = frame_to_records(X)
    lua = workdir / "post.lua"
    lua.write_text(WRK_LUA)
    bodies = {}
    for kind, key in (("ours", "records"), ("mlflow", "dataframe_records")):
        for rows in (1, BATCH):
            path = workdir / f"{kind}-{rows}.json"
            path.write_text(json.dumps({key: (records * 2)[:rows]}))
            bodies[kind, rows] = path
    ceiling = in_process(model_path, X)
    results = []

    def load(name: str, single_url: str, batch_url: str, kind: str) -> None:
        for rows, mode, url in ((1, "single", single_url), (BATCH, "batch", batch_url)):
            load_avg = os.getloadavg()[0]
            log.info("wrk %s %s (load average %.1f)", name, mode, load_avg)
            r = wrk(url, bodies[kind, rows], args.duration, lua)
            results.append({"server": name, "mode": mode, "rows_s": r["req_s"] * rows, "load": load_avg, **r})

    for workers in (1, 2):
        with serve_bento(tag, env={"MLOPS_SERVE_WORKERS": str(workers)}, timeout_s=300) as served:
            name = f"bento ({workers} worker{'s' if workers > 1 else ''})"
            load(name, f"{served.url}/predict", f"{served.url}/batch_predict", "ours")
    (workdir / "flaskapp.py").write_text(FLASK_APP)
    port = free_port()
    gunicorn = [str(Path(sys.executable).parent / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}", "flaskapp:app"]
    with process(gunicorn, f"http://127.0.0.1:{port}/health", workdir, {"MODEL_PATH": model_path}):
        url = f"http://127.0.0.1:{port}/predict"
        load("flask+gunicorn (2 workers)", url, url, "ours")
    port = free_port()
    mlflow_cmd = [
        str(Path(sys.executable).parent / "mlflow"),
        "models",
        "serve",
        "-m",
        model_path,
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-w",
        "2",
        "--env-manager",
        "local",
    ]
    with process(mlflow_cmd, f"http://127.0.0.1:{port}/ping", workdir, {}):
        url = f"http://127.0.0.1:{port}/invocations"
        load("mlflow models serve (2 workers)", url, url, "mlflow")
    report(results, ceiling, args, tag)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def report(results: list[dict], ceiling: dict[int, float], args: argparse.Namespace, tag: str) -> None:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    lines = [
        f"## Serving, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {os.cpu_count()} CPUs, {cpu}; Python {platform.python_version()}. Model: {args.family} on "
        f"breast cancer ({tag}). wrk -t2 -c{CONNECTIONS} -d{args.duration}s; batch = {BATCH} records/request. "
        "Load = 1-min load average when the run started (other jobs share this machine).",
        "",
        "| server | mode | req/s | rows/s | p50 ms | p99 ms | errors | load |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['server']} | {r['mode']} | {r['req_s']:.0f} | {r['rows_s']:.0f} | {r['p50']:.1f} | "
            f"{r['p99']:.1f} | {r['errors']} | {r['load']:.1f} |"
        )
    lines.append(f"| in-process pyfunc.predict | 1 row | {ceiling[1]:.0f} | {ceiling[1]:.0f} | | | | |")
    lines.append(
        f"| in-process pyfunc.predict | {BATCH} rows | {ceiling[BATCH] / BATCH:.0f} | {ceiling[BATCH]:.0f} | | | | |"
    )
    flask = next(r for r in results if r["server"].startswith("flask") and r["mode"] == "single")
    lines.append("")
    for r in results:
        if not r["server"].startswith("bento"):
            continue
        if r["mode"] == "single":
            ok = r["req_s"] >= 1.5 * flask["req_s"] and r["p99"] <= 50 and r["errors"] == 0
            lines.append(
                f"- {r['server']} single: {r['req_s'] / flask['req_s']:.2f}x Flask req/s, "
                f"p99 {r['p99']:.0f} ms, {r['errors']} errors: target {'met' if ok else 'NOT met'}"
            )
        else:
            share = r["rows_s"] / ceiling[BATCH]
            lines.append(
                f"- {r['server']} batch: {share:.0%} of in-process rows/s: target "
                f"{'met' if share >= 0.5 and r['errors'] == 0 else 'NOT met'}"
            )
    table = "\n".join(lines) + "\n"
    print(table)
    results_md = ROOT / "benchmarks" / "RESULTS.md"
    if not results_md.exists():
        results_md.write_text("# Benchmark results\n\n")
    with results_md.open("a") as fh:
        fh.write("\n" + table)


if __name__ == "__main__":
    sys.exit(main())
