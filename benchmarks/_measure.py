"""Run a command and measure its wall time and the peak RSS of its whole process tree."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import subprocess
import time
from pathlib import Path

import psutil


def run_measured(
    cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None, interval: float = 0.05
) -> tuple[float, float, int]:
    """Return (wall seconds, peak tree RSS in MiB, exit code)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        total = 0
        try:
            for p in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
        except psutil.Error:
            pass
        peak = max(peak, total)
        time.sleep(interval)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        print(proc.stderr.read().decode()[-3000:])
    return wall, peak / 2**20, proc.returncode


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} cores, {cpu}, {mem:.0f} GiB RAM, Python {platform.python_version()}"


def load_average() -> str:
    """The 1, 5 and 15 min load averages, for the notes under a table (the machine is shared)."""
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def append_results(title: str, table: str, notes: str = "") -> Path:
    path = Path(__file__).resolve().parent / "RESULTS.md"
    if not path.exists():
        path.write_text("# Benchmark results\n\nEach section is appended by the script named in its title.\n")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    with path.open("a") as fh:
        fh.write(f"\n## {title} ({stamp})\n\nMachine: {machine()}\n\n{table}\n")
        if notes:
            fh.write(f"\n{notes}\n")
    return path
