"""Serving throughput: our bento vs Flask+gunicorn vs `mlflow models serve`, loaded with wrk.

    .venv/bin/python benchmarks/serving.py [--family sklearn_logreg] [--duration 10]

Trains one model on the full breast-cancer set, registers it in a temporary MLflow store
and builds its bento in a temporary BENTOML_HOME, then for each server: 1-record requests
at 32 connections, then 256-record requests (wrk, lua body). In-process ``pyfunc.predict``
is the ceiling. Two floors show what the machine allows before any model work: a bare
uvicorn ASGI app and an empty BentoML endpoint (same service options as ours), both
answering a fixed body. "cpu ms/req" is the server processes' CPU time per request, which
other jobs on the machine disturb much less than req/s. Prints a table and appends it to
benchmarks/RESULTS.md with the machine.
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
FIXED_BODY = b'{"predictions": [{"label": 1, "probability": 0.9, "model_version": "1"}]}'
HELLO_ASGI = f"""
BODY = {FIXED_BODY!r}
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    message = await receive()
    while message.get("more_body"):
        message = await receive()
    await send({{"type": "http.response.start", "status": 200, "headers": HEADERS}})
    await send({{"type": "http.response.body", "body": BODY}})
"""
EMPTY_BENTO = f"""
import gc
from typing import Any
import bentoml
from starlette.responses import Response

@bentoml.service(name="empty", workers=1, traffic={{"timeout": 30}}, logging={{"access": {{"enabled": False}}}},
                 tracing={{"excluded_urls": ["/predict"]}})
class Empty:
    def __init__(self):
        gc.collect()
        gc.freeze()  # as our service does

    @bentoml.api(route="/predict")
    async def predict(self, records: list[dict[str, Any]]) -> dict:
        return Response({FIXED_BODY!r}, media_type="application/json")
"""


def build(workdir: Path, family: str) -> tuple[str, str, pd.DataFrame]:
    """Train, register, build the bento; return (bento tag, local pyfunc path, features frame)."""
    import mlflow

    from components.data.dataset import read_source
    from components.release import registry
    from components.release.package import build_bento
    from components.serving.request_schema import schema_from_frame
    from components.training.families import train_candidate

    registry.configure_tracking(workdir, experiment="benchmark")
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and all its descendants, living now."""
    import psutil

    total = 0.0
    root = psutil.Process(pid)
    for proc in (root, *root.children(recursive=True)):
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def wrk(url: str, body_path: Path, duration: int, lua: Path, server_pid: int) -> dict[str, float]:
    cmd = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{duration}s", "--timeout", "30s", "-s", str(lua), url]
    cpu_before = cpu_seconds(server_pid)
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "WRK_BODY": str(body_path)})
    cpu = cpu_seconds(server_pid) - cpu_before
    match = re.search(r"RESULT (\S+) (\S+) (\S+) (\S+) (\S+) (\S+)", out.stdout)
    if not match:
        raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")
    n, socket_errors, non2xx, p50, p99, secs = (float(v) for v in match.groups())
    errors = int(socket_errors + non2xx)
    return {"req_s": n / secs, "p50": p50, "p99": p99, "errors": errors, "cpu_ms": 1000 * cpu / max(n, 1)}


def http_stack(pid: int) -> str:
    """Event loop and HTTP parser a uvicorn worker under ``pid`` runs, read from its memory maps.

    uvicorn's "auto" settings (BentoML passes no others) pick uvloop and httptools when installed.
    """
    import psutil

    found = set()
    for proc in (psutil.Process(pid), *psutil.Process(pid).children(recursive=True)):
        try:
            paths = {m.path for m in proc.memory_maps()}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        found |= {name for name in ("uvloop", "httptools") for path in paths if f"/{name}/" in path}
    return " + ".join(sorted(found)) or "asyncio + h11"


@contextmanager
def process(cmd: list[str], health_url: str, cwd: Path, env: dict[str, str], timeout_s: float = 180):
    """A server subprocess in its own session, up until the block exits; yields its pid."""
    import httpx

    from components.release.bento_server import stop_server

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
        yield proc.pid
    finally:
        stop_server(proc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="sklearn_logreg", choices=sorted(PARAMS))
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary stores and server logs")
    parser.add_argument("--no-append", action="store_true", help="print the table only, leave RESULTS.md alone")
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
    from components.release.bento_server import free_port, serve_bento
    from components.release.infra_validation import frame_to_records

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
    results, stacks = [], {}

    def load(name: str, pid: int, single_url: str, batch_url: str | None, kind: str) -> None:
        for rows, mode, url in ((1, "single", single_url), (BATCH, "batch", batch_url)):
            if url is None:
                continue
            load_avg = os.getloadavg()[0]
            log.info("wrk %s %s (load average %.1f)", name, mode, load_avg)
            r = wrk(url, bodies[kind, rows], args.duration, lua, pid)
            results.append({"server": name, "mode": mode, "rows_s": r["req_s"] * rows, "load": load_avg, **r})

    bin_dir = Path(sys.executable).parent
    port = free_port()
    hello = [str(bin_dir / "uvicorn"), "hello:app", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    (workdir / "hello.py").write_text(HELLO_ASGI)
    with process(hello, f"http://127.0.0.1:{port}/", workdir, {}) as pid:
        stacks["bare uvicorn"] = http_stack(pid)
        load("floor: bare uvicorn, fixed answer", pid, f"http://127.0.0.1:{port}/predict", None, "ours")
    port = free_port()
    empty = [str(bin_dir / "bentoml"), "serve", "empty:Empty", "--host", "127.0.0.1", "--port", str(port)]
    (workdir / "empty.py").write_text(EMPTY_BENTO)
    with process(empty, f"http://127.0.0.1:{port}/readyz", workdir, {}) as pid:
        load("floor: empty BentoML endpoint", pid, f"http://127.0.0.1:{port}/predict", None, "ours")
    for workers in (1, 2):
        with serve_bento(tag, env={"MLOPS_SERVE_WORKERS": str(workers)}, timeout_s=300) as served:
            name = f"bento ({workers} worker{'s' if workers > 1 else ''})"
            stacks[name] = http_stack(served.pid)
            load(name, served.pid, f"{served.url}/predict", f"{served.url}/batch_predict", "ours")
    (workdir / "flaskapp.py").write_text(FLASK_APP)
    port = free_port()
    gunicorn = [str(bin_dir / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}", "flaskapp:app"]
    with process(gunicorn, f"http://127.0.0.1:{port}/health", workdir, {"MODEL_PATH": model_path}) as pid:
        url = f"http://127.0.0.1:{port}/predict"
        load("flask+gunicorn (2 workers)", pid, url, url, "ours")
    port = free_port()
    mlflow_cmd = [
        str(bin_dir / "mlflow"),
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
    with process(mlflow_cmd, f"http://127.0.0.1:{port}/ping", workdir, {}) as pid:
        url = f"http://127.0.0.1:{port}/invocations"
        load("mlflow models serve (2 workers)", pid, url, url, "mlflow")
    report(results, ceiling, args, tag, stacks)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def report(
    results: list[dict], ceiling: dict[int, float], args: argparse.Namespace, tag: str, stacks: dict[str, str]
) -> None:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    stack_note = "; ".join(f"{name}: {stack}" for name, stack in stacks.items())
    lines = [
        f"## Serving, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {os.cpu_count()} CPUs, {cpu}; Python {platform.python_version()}. Model: {args.family} on "
        f"breast cancer ({tag}). wrk -t2 -c{CONNECTIONS} -d{args.duration}s; batch = {BATCH} records/request. "
        "Load = 1-min load average when the run started (other jobs share this machine). cpu ms/req = CPU "
        f"time of the server's processes per request. Event loop and HTTP parser in use ({stack_note}).",
        "",
        "| server | mode | req/s | rows/s | p50 ms | p99 ms | errors | cpu ms/req | load |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['server']} | {r['mode']} | {r['req_s']:.0f} | {r['rows_s']:.0f} | {r['p50']:.1f} | "
            f"{r['p99']:.1f} | {r['errors']} | {r['cpu_ms']:.2f} | {r['load']:.1f} |"
        )
    lines.append(f"| in-process pyfunc.predict | 1 row | {ceiling[1]:.0f} | {ceiling[1]:.0f} | | | | | |")
    lines.append(
        f"| in-process pyfunc.predict | {BATCH} rows | {ceiling[BATCH] / BATCH:.0f} | {ceiling[BATCH]:.0f} | | | | | |"
    )
    flask = next(r for r in results if r["server"].startswith("flask") and r["mode"] == "single")
    floor = next(r for r in results if r["server"] == "floor: empty BentoML endpoint")
    lines.append("")
    lines.append(
        f"- floor: an empty BentoML endpoint serves {floor['req_s']:.0f} req/s with p99 {floor['p99']:.0f} ms "
        f"at {floor['cpu_ms']:.2f} ms CPU per request"
    )
    for r in results:
        if not r["server"].startswith("bento"):
            continue
        if r["mode"] == "single":
            ok = r["req_s"] >= 1.5 * flask["req_s"] and r["p99"] <= 50 and r["errors"] == 0
            lines.append(
                f"- {r['server']} single: {r['req_s'] / flask['req_s']:.2f}x Flask req/s, "
                f"p99 {r['p99']:.0f} ms, {r['errors']} errors: target {'met' if ok else 'NOT met'} "
                f"({r['cpu_ms'] - floor['cpu_ms']:+.2f} ms CPU per request over the empty endpoint)"
            )
        else:
            share = r["rows_s"] / ceiling[BATCH]
            lines.append(
                f"- {r['server']} batch: {share:.0%} of in-process rows/s: target "
                f"{'met' if share >= 0.5 and r['errors'] == 0 else 'NOT met'}"
            )
    table = "\n".join(lines) + "\n"
    print(table)
    if args.no_append:
        return
    results_md = ROOT / "benchmarks" / "RESULTS.md"
    if not results_md.exists():
        results_md.write_text("# Benchmark results\n\n")
    with results_md.open("a") as fh:
        fh.write("\n" + table)


if __name__ == "__main__":
    sys.exit(main())
