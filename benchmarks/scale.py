"""Validate + train at 50k, 500k and 5M rows of the Adult schema: our components vs a plain floor.

`ours` is the pipeline's own path: read_with_contract (contracts/adult.yaml) -> validate_frame ->
model_frame -> split -> train_candidate for the logreg and hgb candidates of params.yaml -> evaluate
on the validation split. `floor` does the same work written plainly: pd.read_parquet, the contract's
rules in plain pandas (benchmarks/validation.py's), sklearn's train_test_split twice, the same
preprocessing and models built with sklearn directly, the same metrics on the validation split.

Rows are resampled (seeded) from ../shared/datasets/adult when it is there, otherwise synthesised, by
benchmarks/validation.py's code; each size is written once as Parquet under benchmarks/.cache and
reused. Each implementation runs in its own subprocess: wall time and peak RSS are of that process
tree. Prints a table and appends it to benchmarks/RESULTS.md. Usage:

    .venv/bin/python benchmarks/scale.py [--sizes 50000 500000 5000000] [--seed 0] [--no-append]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import append_results, load_average, run_measured  # noqa: E402
from validation import ADULT, CONTRACT, ROOT, make_sizes, plain_checks  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache"
PARAMS = ROOT / "params.yaml"
IMPLS = ("floor", "ours")
CANDIDATES = ("logreg", "hgb")  # params.yaml order
PHASES = ("read", "validate", "split", "logreg", "hgb", "evaluate")
TIMING_NOTE = (
    "Phase columns are wall seconds inside the worker; wall and RSS are of the whole process (interpreter "
    "start and imports included)."
)


# --- data ---------------------------------------------------------------------------


def datasets(sizes: list[int], seed: int) -> tuple[dict[int, Path], str]:
    """One Parquet file per size under benchmarks/.cache, generated on first use.

    Files made from another source (the shared Adult copy appeared or went away) are made again.
    """
    folder = CACHE / f"adult-seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    kind = "resampled" if (ADULT / "adult.data").is_file() else "synthesised"
    origins = {n: folder / f"adult_{n}.origin.txt" for n in sizes}
    stale = [n for n in sizes if not origins[n].is_file() or not origins[n].read_text().startswith(kind)]
    if stale:
        paths, origin = make_sizes(stale, seed, folder)
        for n in stale:
            origins[n].write_text(origin)
    return {n: folder / f"adult_{n}.parquet" for n in sizes}, origins[sizes[0]].read_text()


def settings(names: tuple[str, ...] = CANDIDATES) -> dict:
    """What both implementations take from params.yaml: split shares and seeds, the ``names`` candidates' specs."""
    import yaml

    params = yaml.safe_load(PARAMS.read_text())
    candidates = {}
    for name in names:
        spec = {k: v for k, v in params["train"]["candidates"][name].items() if k not in ("enabled", "search", "tasks")}
        candidates[name] = {"family": spec.pop("family"), "params": spec}
    return {
        "test_size": params["data"]["test_size"],
        "val_size": params["data"]["val_size"],
        "split_seed": params["data"]["seed"],
        "train_seed": params["train"]["seed"],
        "threshold": params["evaluate"]["decision_threshold"],
        "candidates": candidates,
    }


# --- the two implementations (one subprocess each) -----------------------------------


def _peak_rss_mib() -> float:
    """This process's peak RSS. Not ru_maxrss: Linux carries the parent's peak over fork and exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Clock:
    """Wall time and peak RSS (so far) at the end of each phase."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.phases: dict[str, float] = {}
        self.peak_mib: dict[str, float] = {}

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = now - self.last
        self.peak_mib[phase] = _peak_rss_mib()
        self.last = now


def read_and_check(data, contract):
    """read_with_contract + validate_frame in the child: the report and the index of the kept rows
    (the flow's child reads the data itself too, so no frame is pickled across)."""
    from components.data.reading import read_with_contract
    from components.validation.validate import validate_frame

    report, kept = validate_frame(read_with_contract(data, contract), contract)
    return report, kept.index


def ours_metrics(data: Path, contract, s: dict, clock: Clock, task: str = "binary") -> dict[str, dict[str, float]]:
    """Our components' path through ``data`` under ``contract``: each candidate's metrics on the validation split."""
    from components.data.dataset import features_and_target, split
    from components.data.reading import model_frame, read_with_contract
    from components.evaluation.metrics import evaluate
    from components.training.families import train_candidate
    from flows.child_process import ChildProcess
    from flows.steps import VALIDATION_IMPORTS

    clock.lap("import")
    # As the training flow does: validation (and its GX import) in a spawned child that is gone before
    # the fits, started now so that its imports overlap with the read.
    with ChildProcess(warm=VALIDATION_IMPORTS) as child:
        frame = read_with_contract(data, contract)
        clock.lap("read")
        report, kept = child.call(read_and_check, data, contract)
    if not report.success:
        raise SystemExit(f"data rejected: {[r.describe() for r in report.failures()]}")
    frame = model_frame(frame if len(kept) == len(frame) else frame.loc[kept], contract)
    clock.lap("validate")
    splits = split(frame, contract.target, s["test_size"], s["val_size"], s["split_seed"], task=task)
    del frame
    X, y = features_and_target(splits.train, contract.target)
    clock.lap("split")
    models = {}
    for name, spec in s["candidates"].items():
        models[name] = train_candidate(
            name, spec["family"], spec["params"], X, y, seed=s["train_seed"], threshold=s["threshold"], task=task
        )
        clock.lap(name)
    metrics = {name: evaluate(m, splits.val, contract.target, "val").metrics for name, m in models.items()}
    clock.lap("evaluate")
    return metrics


def run_ours(data: Path, s: dict, clock: Clock) -> dict[str, float]:
    from components.data.contract import load_contract

    metrics = ours_metrics(data, load_contract(CONTRACT), s, clock)
    return {name: values["roc_auc"] for name, values in metrics.items()}


def plain_preprocessor(numeric: list[str], categorical: list[str]):
    """The preprocessing every family applies, built with sklearn directly (the floor's)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                categorical,
            ),
        ]
    )


def _plain_model(name: str, spec: dict, numeric: list[str], categorical: list[str], seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    p = spec["params"]
    if name == "logreg":
        model = LogisticRegression(C=p["C"], max_iter=p["max_iter"], random_state=seed)
    else:
        model = HistGradientBoostingClassifier(
            learning_rate=p["learning_rate"],
            max_iter=p["max_iter"],
            max_leaf_nodes=p["max_leaf_nodes"],
            early_stopping=False,
            random_state=seed,
        )
    return make_pipeline(plain_preprocessor(numeric, categorical), model)


def run_floor(data: Path, s: dict, clock: Clock) -> dict[str, float]:
    import numpy as np
    import pandas as pd
    from sklearn import metrics as m
    from sklearn.model_selection import train_test_split
    from threadpoolctl import threadpool_limits

    from components.data.contract import load_contract  # the rules' values only; the checks are plain pandas

    contract = load_contract(CONTRACT)
    clock.lap("import")
    frame = pd.read_parquet(data)
    clock.lap("read")
    failed = [(rule, column) for rule, column, ok in plain_checks(frame, contract) if not ok]
    if failed:
        raise SystemExit(f"data rejected: {failed}")
    target = contract.target
    features = [c.name for c in contract.columns if c.feature and c.name != target]
    frame = frame[[*features, target]]
    clock.lap("validate")
    rest, test = train_test_split(frame, test_size=s["test_size"], random_state=s["split_seed"], stratify=frame[target])
    train, val = train_test_split(rest, test_size=s["val_size"], random_state=s["split_seed"], stratify=rest[target])
    del frame, rest, test
    positive = sorted(contract.labels)[1]
    X, y = train[features], (train[target] == positive).to_numpy(dtype=int)
    numeric = [c for c in features if pd.api.types.is_numeric_dtype(X[c])]
    categorical = [c for c in features if c not in numeric]
    clock.lap("split")
    models = {}
    for name, spec in s["candidates"].items():
        # The same thread policy as train_candidate (one thread below 50,000 rows), so that the ratio
        # measures overhead rather than OpenMP spin-waiting on a busy two-core machine.
        with threadpool_limits(limits=1 if len(X) < 50_000 else None):
            models[name] = _plain_model(name, spec, numeric, categorical, s["train_seed"]).fit(X, y)
        clock.lap(name)
    y_val = (val[target] == positive).to_numpy(dtype=int)
    auc = {}
    for name, model in models.items():
        proba = model.predict_proba(val[features])[:, 1]
        pred = (proba >= s["threshold"]).astype(int)
        auc[name] = m.roc_auc_score(y_val, proba)
        for score in (m.average_precision_score, m.log_loss, m.brier_score_loss):
            score(y_val, np.clip(proba, 1e-15, 1 - 1e-15))
        for score in (m.f1_score, m.accuracy_score, m.balanced_accuracy_score):
            score(y_val, pred)
    clock.lap("evaluate")
    return auc


def worker(impl: str, data: Path, out: Path) -> None:
    clock = Clock()
    auc = (run_ours if impl == "ours" else run_floor)(data, settings(), clock)
    out.write_text(json.dumps({"phases": clock.phases, "peak_mib": clock.peak_mib, "auc": auc}))


# --- driver -------------------------------------------------------------------------


def measure(impl: str, data: Path, script: Path | None = None, args: tuple[str, ...] = ()) -> dict:
    """Run the worker of ``script`` (this file by default) for ``impl`` on ``data`` plus ``args``: JSON, wall, RSS."""
    out = data.with_name(f"{data.stem}.{impl}.json")
    script = (script or Path(__file__)).resolve()
    cmd = [sys.executable, str(script), "--worker", impl, "--data", str(data), "--out", str(out), *args]
    wall, rss, rc = run_measured(cmd, cwd=ROOT)
    if rc != 0:
        raise SystemExit(f"{impl} worker failed on {data.name} (exit {rc})")
    result = json.loads(out.read_text()) | {"wall": wall, "rss": rss}
    out.unlink()
    return result


def table(results: dict[int, dict[str, dict]]) -> str:
    lines = [
        "| rows | impl | wall (s) | peak RSS (MiB) | wall vs floor | RSS vs floor | s per 1M rows "
        "| import | read | validate | split | train logreg | train hgb | evaluate | val ROC AUC logreg / hgb |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, by_impl in results.items():
        floor = by_impl["floor"]
        for impl in IMPLS:
            r, p = by_impl[impl], by_impl[impl]["phases"]
            phases = " | ".join(f"{p[k]:.1f}" for k in ("import", *PHASES))
            auc = " / ".join(f"{r['auc'][c]:.4f}" for c in CANDIDATES)
            lines.append(
                f"| {n:,} | {impl} | {r['wall']:.1f} | {r['rss']:.0f} | {r['wall'] / floor['wall']:.2f}× "
                f"| {r['rss'] / floor['rss']:.2f}× | {r['wall'] / n * 1e6:.1f} | {phases} | {auc} |"
            )
    rows = [(f"{n:,} | {impl}", by_impl[impl]) for n, by_impl in results.items() for impl in IMPLS]
    return "\n".join(lines + peak_table("rows | impl", rows, PHASES))


def peak_table(header: str, rows: list[tuple[str, dict]], phases: tuple[str, ...]) -> list[str]:
    """Peak RSS at the end of each phase, a line per (label, result); ``header`` names the label's columns."""
    lines = ["", "Peak RSS of the worker process so far (MiB, VmHWM) at the end of each phase:", ""]
    lines += [f"| {header} | " + " | ".join(phases) + " |", "|---" * (header.count("|") + 1 + len(phases)) + "|"]
    lines += [f"| {label} | " + " | ".join(f"{r['peak_mib'][k]:.0f}" for k in phases) + " |" for label, r in rows]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 500_000, 5_000_000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-append", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--worker", choices=IMPLS, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.data, args.out)
        return
    load_start = load_average()
    paths, origin = datasets(args.sizes, args.seed)
    print(f"data: {origin}", flush=True)
    results: dict[int, dict[str, dict]] = {}
    for n, path in paths.items():
        results[n] = {impl: measure(impl, path) for impl in IMPLS}
        print("\n".join(table({n: results[n]}).splitlines()[2:4]), flush=True)  # kept if a later size dies
    text = table(results)
    print(text)
    load = f"{load_start} at the start, {load_average()} at the end"
    notes = (
        f"Data: {origin}; one run each, seed {args.seed}. `ours`: read_with_contract + validate_frame (GX) + "
        "model_frame + data.split + train_candidate (logreg, hgb; params.yaml) + evaluate on val. `floor`: "
        "read_parquet + the same rules in plain pandas + train_test_split twice + the same sklearn "
        "preprocessing and models built directly + the same metrics. Equal val ROC AUC means both trained "
        f"the same models on the same rows. {TIMING_NOTE} Both cap BLAS/OpenMP at one thread below 50,000 "
        f"training rows, as train_candidate does. Load average (1, 5, 15 min): {load} on a shared machine."
    )
    if not args.no_append:
        title = "benchmarks/scale.py: validate + train, ours vs plain floor"
        print(f"appended to {append_results(title, text, notes)}")


if __name__ == "__main__":
    main()
