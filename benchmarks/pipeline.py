"""Full pipeline (`mlops run`, cold) vs a plain script doing the same ML, side by side.

Cold means a fresh MLflow SQLite store, a fresh Prefect home and a fresh bento store. Prints wall time and
peak RSS (whole process tree) and appends the table to benchmarks/RESULTS.md. Usage:

    .venv/bin/python benchmarks/pipeline.py [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import append_results, run_measured  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def fresh_project(tmp: Path) -> Path:
    for name in ("params.yaml", "constraints.txt"):
        shutil.copy(ROOT / name, tmp / name)
    shutil.copytree(ROOT / "contracts", tmp / "contracts")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    run_measured([str(BIN / "mlops"), "ingest"], cwd=tmp, env=env)
    return tmp


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
            full = run_measured([str(BIN / "mlops"), "run"], cwd=project, env=env)
            rows.append((i + 1, plain, full))
    lines = [
        "| run | plain script (s) | plain peak RSS (MiB) | mlops run cold (s) | mlops peak RSS (MiB) | time ratio |",
        "|---|---|---|---|---|---|",
    ]
    for i, plain, full in rows:
        if plain[2] or full[2]:
            raise SystemExit(f"a run failed: plain exit {plain[2]}, mlops exit {full[2]}")
        lines.append(
            f"| {i} | {plain[0]:.1f} | {plain[1]:.0f} | {full[0]:.1f} | {full[1]:.0f} | {full[0] / plain[0]:.2f}x |"
        )
    table = "\n".join(lines)
    print(table)
    append_results("benchmarks/pipeline.py: full pipeline vs plain script", table)


if __name__ == "__main__":
    main()
