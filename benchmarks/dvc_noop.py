"""How fast `dvc repro` is when nothing changed, and when one candidate's parameter did.

Builds a temporary git + DVC repo holding the project's code, params, contract and the
default dataset, runs the pipeline once, then times a no-op `dvc repro` (target: at
most 3 s), a no-op `dvc status`, and a change of train.candidates.hgb.learning_rate
(re-runs train@hgb and evaluate only). Prints a table and appends it to
benchmarks/RESULTS.md. Usage:

    .venv/bin/python benchmarks/dvc_noop.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import append_results, run_measured  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="true",
           GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.com", GIT_COMMITTER_NAME="bench",
           GIT_COMMITTER_EMAIL="bench@example.com", PYTHONWARNINGS="ignore")  # fmt: skip


def run(cmd: list[str], cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, env=ENV, check=True, capture_output=True, text=True)


def project(tmp: Path) -> Path:
    """A git + DVC copy of the project with the default dataset, committed."""
    sys.path.insert(0, str(ROOT))
    from components.config import load_settings
    from components.data.dataset import ingest

    for name in ("params.yaml", "constraints.txt", "dvc.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(ROOT / name, tmp / name)
    for name in ("contracts", "components", "flows"):
        shutil.copytree(ROOT / name, tmp / name, ignore=shutil.ignore_patterns("__pycache__"))
    settings = load_settings(tmp / "params.yaml")
    ingest(settings.data.source, tmp / settings.data.path)
    run(["git", "init", "-q"], tmp)
    run([str(BIN / "dvc"), "init", "-q"], tmp)
    run([str(BIN / "dvc"), "add", "-q", "data"], tmp)
    run(["git", "add", "-A"], tmp)
    run(["git", "commit", "-qm", "bench"], tmp)
    return tmp


def set_learning_rate(root: Path, value: float) -> None:
    import yaml

    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["train"]["candidates"]["hgb"]["learning_rate"] = value
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def measured(cmd: list[str], root: Path) -> tuple[float, float, float]:
    """(wall s, CPU s of the process tree, peak RSS MiB): CPU time does not grow with other users' load."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, rss, code = run_measured(cmd, cwd=root, env=ENV)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {code}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), rss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5, help="no-op runs to time (default 5)")
    args = parser.parse_args()
    dvc = str(BIN / "dvc")
    with tempfile.TemporaryDirectory(prefix="dvc-noop-") as tmp:
        root = project(Path(tmp))
        first = measured([dvc, "repro"], root)
        noops = [measured([dvc, "repro"], root) for _ in range(args.repeat)]
        status = [measured([dvc, "status"], root) for _ in range(args.repeat)]
        set_learning_rate(root, 0.05)
        change = measured([dvc, "repro"], root)
    load = os.getloadavg()[0]

    def row(what: str, runs: list[tuple[float, float, float]]) -> str:
        walls = [w for w, _, _ in runs]
        spread = f"{min(walls):.2f}–{max(walls):.2f}" if len(walls) > 1 else f"{walls[0]:.2f}"
        cpu, peak = statistics.median(c for _, c, _ in runs), max(r for _, _, r in runs)
        return f"| {what} | {statistics.median(walls):.2f} | {spread} | {cpu:.2f} | {len(walls)} | {peak:.0f} |"

    table = "\n".join([
        "| what | median wall (s) | min–max wall (s) | median CPU (s) | runs | peak RSS (MiB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        row("first `dvc repro` (every stage, default params and data)", [first]),
        row("no-op `dvc repro` (target ≤ 3 s)", noops),
        row("no-op `dvc status`", status),
        row("`dvc repro` after hgb learning_rate change (train@hgb + evaluate)", [change]),
    ])  # fmt: skip
    notes = f"1-minute load average at the end: {load:.2f} (the machine is shared; wall time grows with load)."
    print(table)
    print(notes)
    print(f"appended to {append_results('DVC no-op repro (benchmarks/dvc_noop.py)', table, notes)}")


if __name__ == "__main__":
    main()
