"""Candidates plus a 16-trial search: Prefect's default runner (one fit at a time) vs Dask with 2 workers.

Each engine gets its own fresh project and runs `mlops run` on the same Adult-schema data (UCI Adult
resampled when ../shared/datasets/adult exists, otherwise synthesised) with the same seeded params, so
both must choose the same model with the same metrics (checked). Reported: the training phase as the
flow measures it (`fit_phase_seconds` on the MLflow run), the whole run's wall time and peak RSS of the
process tree (Dask workers included); runs of the two engines are interleaved and the median is used,
because a shared 2-core machine drifts by 10-20 % from one run to the next. Usage:

    .venv/bin/python benchmarks/parallel.py [--rows 32561] [--trials 16] [--repeat 2] [--standing]

``--standing`` measures the production shape instead: a Prefect server and a Dask scheduler with two
workers that are up before the runs (the flow then only connects), warmed by one untimed run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import append_results, load_average, run_measured  # noqa: E402
from pipeline import prefect_server  # noqa: E402
from validation import make_sizes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ADULT_SETTINGS = [
    "evaluate.thresholds={f1: 0.5}",
    "promote.registered_model=adult-income",
    "package.service_name=adult-income",
    "package.infra_validation.enabled=false",
    # the candidate set as in params.yaml; the search runs on hgb only
    "train.candidates.logreg.search=null",
    "train.candidates.mlp.search=null",
]


def project(tmp: Path) -> Path:
    tmp.mkdir(parents=True)
    for name in ("params.yaml", "constraints.txt"):
        shutil.copy(ROOT / name, tmp / name)
    shutil.copytree(ROOT / "contracts", tmp / "contracts")
    return tmp


def run_metrics(proj: Path) -> dict[str, float]:
    """The parent run's metrics from the project's MLflow store (read-only, plain SQL)."""
    with sqlite3.connect(proj / "mlflow.db") as db:
        (run_id,) = db.execute(
            "SELECT run_uuid FROM runs WHERE name = 'training-pipeline' ORDER BY start_time DESC LIMIT 1"
        ).fetchone()
        rows = db.execute("SELECT key, value FROM latest_metrics WHERE run_uuid = ?", (run_id,)).fetchall()
    return dict(rows)


@contextlib.contextmanager
def standing_services(tmp: Path):
    """How a team runs it: a Prefect server and a Dask scheduler with 2 workers, up before any run.

    The workers get what the flow's own LocalCluster gets: one thread each, the Prefect API, and no
    MALLOC_TRIM_THRESHOLD_ (Dask's config key set to null in a config file).
    Yields (PREFECT_API_URL, scheduler address); everything is stopped afterwards.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sched_port = sock.getsockname()[1]
    address = f"tcp://127.0.0.1:{sched_port}"
    env = dict(os.environ, PREFECT_HOME=str(tmp / "prefect-home"), PYTHONWARNINGS="ignore")
    env.pop("PREFECT_API_URL", None)
    with prefect_server(tmp, env) as api_url:
        # A config file, not a DASK_* variable: Dask lowercases keys that come from variables, which would
        # add a key "malloc_trim_threshold_" instead of unsetting MALLOC_TRIM_THRESHOLD_.
        config = tmp / "dask-config"
        config.mkdir(exist_ok=True)
        (config / "no-trim.yaml").write_text(
            "distributed:\n  nanny:\n    pre-spawn-environ:\n      MALLOC_TRIM_THRESHOLD_: null\n"
        )
        no_trim = {"DASK_CONFIG": str(config)}
        cmds = [
            ([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(sched_port), "--no-dashboard"], env),
            ([str(BIN / "dask"), "worker", address, "--nworkers", "2", "--nthreads", "1", "--host", "127.0.0.1",
              "--no-dashboard"], dict(env, PREFECT_API_URL=api_url, **no_trim)),
        ]  # fmt: skip
        procs = []
        log = (tmp / "dask.log").open("wb")
        try:
            for cmd, cmd_env in cmds:
                out = {"stdout": log, "stderr": subprocess.STDOUT}
                procs.append(subprocess.Popen(cmd, env=cmd_env, start_new_session=True, **out))
            from distributed import Client

            with Client(address, timeout="60s") as client:
                client.wait_for_workers(2, timeout=120)
            yield api_url, address
        finally:
            for proc in reversed(procs):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=30)
            log.close()


def run_once(engine: str, data: Path, tmp: Path, trials: int, services: tuple[str, str] | None = None) -> dict:
    """One `mlops run` on a fresh project with ``engine``: training phase, wall time, peak RSS, metrics.

    With ``services`` (API URL, scheduler address) the run reports to that Prefect server, and the dask
    engine uses that scheduler instead of starting a LocalCluster.
    """
    proj = project(tmp)
    env = dict(os.environ, PREFECT_HOME=str(proj / ".prefect"), BENTOML_HOME=str(proj / ".bentoml"))
    env |= {"PYTHONWARNINGS": "ignore"}
    for name in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
        env.pop(name, None)
    sets = [*ADULT_SETTINGS, f"train.search.n_trials={trials}", f"train.parallel.engine={engine}"]
    if services:
        env["PREFECT_API_URL"] = services[0]
        if engine == "dask":
            sets.append(f"train.parallel.address={services[1]}")
    cmd = [str(BIN / "mlops"), "run", "--data", str(data), "--contract", "contracts/adult.yaml"]
    for item in sets:
        cmd += ["--set", item]
    # RSS is sampled every 0.5 s: scanning the process tree every 50 ms took ~10 % of a core from the workers
    wall, rss, code = run_measured(cmd, cwd=proj, env=env, interval=0.5)
    if code not in (0, 3):  # 3 = ran, but the gate kept no champion: still a full training phase
        raise SystemExit(f"{engine} run failed with exit code {code}")
    metrics = run_metrics(proj)
    return {"wall": wall, "rss": rss, "fit": metrics["fit_phase_seconds"], "metrics": metrics}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=32_561, help="rows of the Adult schema (adult.data has 32,561)")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=2, help="runs per engine, interleaved (the machine is shared)")
    parser.add_argument(
        "--standing",
        action="store_true",
        help="a Prefect server and a Dask scheduler + 2 workers started before the runs (warmed by one untimed run)",
    )
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {"local": [], "dask": []}
    with tempfile.TemporaryDirectory() as tmp_name, contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        paths, origin = make_sizes([args.rows], 0, tmp)
        services = stack.enter_context(standing_services(tmp)) if args.standing else None
        if services:
            print("warming the standing workers (untimed run) ...", flush=True)
            run_once("dask", paths[args.rows], tmp / "warm-up", args.trials, services)
        for i in range(args.repeat):
            for engine in runs:
                print(f"run {i + 1}/{args.repeat}: {engine} ...", flush=True)
                r = run_once(engine, paths[args.rows], tmp / f"{engine}-{i}", args.trials, services)
                print(f"  training phase {r['fit']:.1f} s, whole run {r['wall']:.1f} s", flush=True)
                runs[engine].append(r)
    test = {e: [{k: v for k, v in r["metrics"].items() if k.startswith("test_")} for r in rs] for e, rs in runs.items()}
    same = all(t == test["local"][0] for ts in test.values() for t in ts)
    med = {e: {k: statistics.median(r[k] for r in rs) for k in ("fit", "wall", "rss")} for e, rs in runs.items()}
    lines = [
        "| engine | training phase (s), each run | median | speed-up | whole run (s), median | speed-up "
        "| peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for engine, rs in runs.items():
        each = ", ".join(f"{r['fit']:.1f}" for r in rs)
        m, base = med[engine], med["local"]
        lines.append(
            f"| {engine} | {each} | {m['fit']:.1f} | {base['fit'] / m['fit']:.2f}x | {m['wall']:.1f} | "
            f"{base['wall'] / m['wall']:.2f}x | {m['rss']:.0f} |"
        )
    table = "\n".join(lines)
    print(table)
    load = load_average()
    setup = (
        "Standing services: a Prefect server and a Dask scheduler with 2 worker processes x 1 thread, started "
        "before the runs and warmed by one untimed dask run; local = Prefect's default runner against the same "
        "server, one fit at a time; dask = `train.parallel.address` set to that scheduler"
        if args.standing
        else "local = Prefect's default runner, one fit at a time, temporary Prefect API; dask = LocalCluster, 2 "
        "worker processes x 1 thread, started by the flow while it validates the data and stopped in the "
        "background after the fits"
    )
    notes = (
        f"Data: {args.rows:,} rows, {origin}. Candidates logreg, hgb, mlp (params.yaml) plus a {args.trials}-trial "
        f"Optuna search on hgb (batch_size from params.yaml). {setup}. Training phase = `fit_phase_seconds` "
        f"(from the start of training, waiting for the cluster included, to the last result). {args.repeat} runs "
        f"per engine, "
        f"interleaved. Same test metrics in every run: {same}. Target: >= 1.7x. Load average at the end "
        f"(1, 5, 15 min): {load}."
    )
    print(notes)
    title = "standing Prefect server and Dask workers" if args.standing else "flow-started LocalCluster"
    append_results(f"benchmarks/parallel.py: sequential vs Dask (2 workers), {title}", table, notes)


if __name__ == "__main__":
    main()
