"""Multiclass and regression at 500k rows of the Adult schema: our components vs a plain floor.

The binary comparison of benchmarks/scale.py, for the two other tasks:

- multiclass: `occupation` is the target (14 classes; rows without one are left out), the income
  label `Y` becomes a feature;
- regression: `hours-per-week` is the target (a number from 1 to 99).

`ours` is the pipeline's own path: read_with_contract -> validate_frame -> model_frame ->
data.split(task=...) -> train_candidate(task=...) for the hgb and lgbm candidates of params.yaml ->
evaluate on the validation split. The contract is contracts/adult.yaml with the target and task
changed in code (task_contract). `floor` does the same work written plainly: pd.read_parquet,
the contract's rules in plain pandas (benchmarks/validation.py's), sklearn's train_test_split twice,
the same preprocessing and the same HistGradientBoosting and LightGBM models with the same
params built directly, the same metrics.

Rows come from benchmarks/scale.py's cache (resampled from ../shared/datasets/adult, or synthesised
without it). Each implementation runs in its own subprocess, `--repeat` times, interleaved; the table
keeps the fastest run's wall time and phases and the lowest peak RSS. Prints a table and appends it
to benchmarks/RESULTS.md. Usage:

    .venv/bin/python benchmarks/tasks.py [--sizes 500000] [--tasks multiclass regression] [--repeat 2]
        [--seed 0] [--no-append]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import append_results, load_average  # noqa: E402
from scale import (  # noqa: E402
    TIMING_NOTE,
    Clock,
    datasets,
    measure,
    ours_metrics,
    peak_table,
    plain_preprocessor,
    settings,
)
from validation import CONTRACT, plain_checks  # noqa: E402

MULTICLASS, REGRESSION = "multiclass", "regression"
TARGETS = {MULTICLASS: "occupation", REGRESSION: "hours-per-week"}
PRIMARY = {MULTICLASS: "f1_macro", REGRESSION: "rmse"}  # the tasks' default primary metrics (vocabulary)
IMPLS = ("floor", "ours")
CANDIDATES = ("hgb", "lgbm")  # params.yaml order
PHASES = ("read", "validate", "split", *CANDIDATES, "evaluate")
OVERSAMPLE = 1.1  # occupation is missing in about 6% of Adult's rows: draw more, keep the first n with one


# --- data and contract ----------------------------------------------------------------


def task_data(task: str, n: int, seed: int) -> tuple[Path, str]:
    """The Parquet file of ``n`` rows for ``task`` (written once next to scale.py's), and where its rows come from."""
    if task == REGRESSION:  # every row has hours-per-week: scale.py's file as it is
        paths, origin = datasets([n], seed)
        return paths[n], origin
    import pandas as pd

    drawn = math.ceil(n * OVERSAMPLE)
    paths, origin = datasets([drawn], seed)
    path = paths[drawn].with_name(f"{task}_{n}.parquet")
    if not path.is_file() or path.stat().st_mtime < paths[drawn].stat().st_mtime:
        frame = pd.read_parquet(paths[drawn])
        frame = frame[frame[TARGETS[task]].notna()].head(n)
        if len(frame) < n:
            raise SystemExit(f"only {len(frame):,} of {drawn:,} rows have an occupation; raise OVERSAMPLE")
        frame.reset_index(drop=True).to_parquet(path, index=False)
    return path, f"{origin}; the first {n:,} of {drawn:,} such rows that have an occupation"


def task_contract(task: str):
    """contracts/adult.yaml with ``TARGETS[task]`` as the target: the income label becomes a feature."""
    from dataclasses import replace

    from components.data.contract import load_contract

    adult, target = load_contract(CONTRACT), TARGETS[task]
    columns = []
    for col in adult.columns:
        if col.name == target:  # the rows without one were left out: a missing target is an error
            col = replace(col, nullable=False, max_null_fraction=None, feature=False)
        elif col.name == adult.target:
            col = replace(col, feature=True, allowed=list(adult.labels))
        columns.append(col)
    labels = list(adult.column(target).allowed) if task == MULTICLASS else []
    return replace(
        adult, name=f"adult-{target}", target=target, task=task, labels=labels, class_balance={}, columns=tuple(columns)
    )


# --- the two implementations (one subprocess each) -----------------------------------


def run_ours(data: Path, task: str, s: dict, clock: Clock) -> dict[str, dict[str, float]]:
    return ours_metrics(data, task_contract(task), s, clock, task)


def _plain_model(task: str, spec: dict, numeric: list[str], categorical: list[str], seed: int):
    from lightgbm import LGBMClassifier, LGBMRegressor
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.pipeline import make_pipeline

    p, regression = spec["params"], task == REGRESSION
    if spec["family"] == "sklearn_hgb":
        cls = HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
        kwargs = {k: p[k] for k in ("learning_rate", "max_iter", "max_leaf_nodes")} | {"early_stopping": False}
    else:  # lightgbm with its own defaults otherwise (threads, row- or column-wise histograms)
        cls = LGBMRegressor if regression else LGBMClassifier
        kwargs = {k: p[k] for k in ("n_estimators", "learning_rate", "num_leaves", "min_child_samples")}
        kwargs["verbose"] = -1
    return make_pipeline(plain_preprocessor(numeric, categorical), cls(**kwargs, random_state=seed))


def _plain_metrics(task: str, model, X, y) -> dict[str, float]:
    import numpy as np
    from sklearn import metrics as m

    if task == REGRESSION:
        pred = model.predict(X)
        out = {"rmse": m.root_mean_squared_error(y, pred), "mae": m.mean_absolute_error(y, pred)}
        out["r2"] = m.r2_score(y, pred)
        if not (y == 0).any():
            out["mape"] = m.mean_absolute_percentage_error(y, pred)
        return out
    proba, classes = model.predict_proba(X), model.classes_
    pred = classes[np.argmax(proba, axis=1)]
    return {
        "accuracy": m.accuracy_score(y, pred),
        "balanced_accuracy": m.balanced_accuracy_score(y, pred),
        "f1_macro": m.f1_score(y, pred, average="macro", zero_division=0),
        "f1_weighted": m.f1_score(y, pred, average="weighted", zero_division=0),
        "log_loss": m.log_loss(y, proba, labels=classes),
        "roc_auc_ovr": m.roc_auc_score(y, proba, multi_class="ovr", labels=classes),
    }


def run_floor(data: Path, task: str, s: dict, clock: Clock) -> dict[str, dict[str, float]]:
    import pandas as pd
    from sklearn.model_selection import train_test_split

    contract = task_contract(task)  # the rules' values only; the checks are plain pandas
    clock.lap("import")
    frame = pd.read_parquet(data)
    clock.lap("read")
    target = contract.target
    checks = plain_checks(frame, contract)
    if task == REGRESSION:  # no labels to check: a numeric target with more than two values instead
        y = frame[target]
        checks = [c for c in checks if c[0] not in ("labels", "min_classes", "class_balance")]
        checks.append(("numeric_target", target, pd.api.types.is_numeric_dtype(y) and y.nunique() > 2))
    failed = [(rule, column) for rule, column, ok in checks if not ok]
    if failed:
        raise SystemExit(f"data rejected: {failed}")
    features = [c.name for c in contract.columns if c.feature and c.name != target]
    frame = frame[[*features, target]]
    clock.lap("validate")
    # A regression target is stratified on deciles, as data.split does, so both train on the same rows.
    strata = pd.qcut(frame[target], 10, labels=False, duplicates="drop") if task == REGRESSION else frame[target]
    rest, test = train_test_split(frame, test_size=s["test_size"], random_state=s["split_seed"], stratify=strata)
    train, val = train_test_split(
        rest, test_size=s["val_size"], random_state=s["split_seed"], stratify=strata.loc[rest.index]
    )
    del frame, rest, test, strata
    X, y = train[features], train[target]
    numeric = [c for c in features if pd.api.types.is_numeric_dtype(X[c])]
    categorical = [c for c in features if c not in numeric]
    clock.lap("split")
    models = {}
    for name, spec in s["candidates"].items():
        models[name] = _plain_model(task, spec, numeric, categorical, s["train_seed"]).fit(X, y)
        clock.lap(name)
    metrics = {name: _plain_metrics(task, model, val[features], val[target]) for name, model in models.items()}
    clock.lap("evaluate")
    return metrics


def worker(impl: str, task: str, data: Path, out: Path) -> None:
    clock = Clock()
    metrics = (run_ours if impl == "ours" else run_floor)(data, task, settings(CANDIDATES), clock)
    metrics = {name: {k: float(v) for k, v in values.items()} for name, values in metrics.items()}
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread's: OpenMP spin-waiting shows here too
    cpu = usage.ru_utime + usage.ru_stime
    out.write_text(json.dumps({"phases": clock.phases, "peak_mib": clock.peak_mib, "metrics": metrics, "cpu": cpu}))


# --- driver -------------------------------------------------------------------------


def best(runs: list[dict]) -> dict:
    """The fastest run's phases and metrics, with each run's wall time and the lowest peak RSS of all."""
    fastest = min(runs, key=lambda r: r["wall"])
    return fastest | {"walls": [r["wall"] for r in runs], "rss": min(r["rss"] for r in runs)}


def table(results: dict[tuple[str, int], dict[str, dict]]) -> str:
    lines = [
        "| task (target) | rows | impl | wall (s), each run | wall (s) | CPU (s) | peak RSS (MiB) | wall vs floor "
        "| RSS vs floor | import | read | validate | split | train hgb | train lgbm | evaluate "
        "| val metric: hgb / lgbm |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (task, n), by_impl in results.items():
        floor = by_impl["floor"]
        for impl in IMPLS:
            r, p, metric = by_impl[impl], by_impl[impl]["phases"], PRIMARY[task]
            walls = ", ".join(f"{w:.1f}" for w in r["walls"])
            phases = " | ".join(f"{p[k]:.1f}" for k in ("import", *PHASES))
            scores = " / ".join(f"{r['metrics'][c][metric]:.4f}" for c in CANDIDATES)
            lines.append(
                f"| {task} ({TARGETS[task]}) | {n:,} | {impl} | {walls} | {r['wall']:.1f} | {r['cpu']:.1f} "
                f"| {r['rss']:.0f} "
                f"| {r['wall'] / floor['wall']:.2f}× | {r['rss'] / floor['rss']:.2f}× | {phases} | {metric} {scores} |"
            )
    lines += ["", "| task | rows | wall ours / floor (target <= 1.30×) | RSS ours / floor (target <= 1.00×) "
              "| CPU ours / floor |", "|---|---|---|---|---|"]  # fmt: skip
    for (task, n), by_impl in results.items():
        wall, rss, cpu = (by_impl["ours"][k] / by_impl["floor"][k] for k in ("wall", "rss", "cpu"))
        lines.append(
            f"| {task} | {n:,} | {wall:.2f}× {'met' if wall <= 1.3 else 'MISSED'} "
            f"| {rss:.2f}× {'met' if rss <= 1.0 else 'MISSED'} | {cpu:.2f}× |"
        )
    rows = [(f"{task} | {n:,} | {impl}", by_impl[impl]) for (task, n), by_impl in results.items() for impl in IMPLS]
    return "\n".join(lines + peak_table("task | rows | impl", rows, PHASES))  # of the fastest run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[500_000])
    parser.add_argument("--tasks", nargs="+", choices=tuple(TARGETS), default=list(TARGETS))
    parser.add_argument("--repeat", type=int, default=2, help="runs per implementation, interleaved")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-append", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--worker", choices=IMPLS, help=argparse.SUPPRESS)
    parser.add_argument("--task", choices=tuple(TARGETS), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.task, args.data, args.out)
        return
    load_start = load_average()
    results: dict[tuple[str, int], dict[str, dict]] = {}
    origins = {}
    for task in args.tasks:
        for n in args.sizes:
            path, origins[task] = task_data(task, n, args.seed)
            runs: dict[str, list[dict]] = {impl: [] for impl in IMPLS}
            for i in range(args.repeat):
                for impl in IMPLS:
                    runs[impl].append(measure(impl, path, Path(__file__), ("--task", task)))
                    print(f"{task} {n:,} {impl} run {i + 1}: {runs[impl][-1]['wall']:.1f} s", flush=True)
            results[task, n] = {impl: best(runs[impl]) for impl in IMPLS}
    text = table(results)
    print(text)
    command = " ".join([".venv/bin/python", "benchmarks/tasks.py", *sys.argv[1:]])
    data = " ".join(f"{task}: {origin}." for task, origin in origins.items())
    notes = (
        f"Command: `{command}`. Data: {data} Seed {args.seed}; {args.repeat} run(s) per implementation, "
        "interleaved; wall, worker CPU (all threads), phases and per-phase peaks of the fastest run; the "
        "lowest peak RSS. "
        "Contract: contracts/adult.yaml with the target and task changed (the income label Y a feature). "
        "`ours`: scale.py's path with the task (train_candidate for hgb and lgbm of params.yaml). `floor`: "
        "read_parquet + the same rules in plain pandas + train_test_split twice (a regression target "
        "stratified on deciles, as data.split does) + the same sklearn preprocessing and HistGradientBoosting "
        "/ LightGBM models with the same params built directly + the same metrics. The floor's LightGBM keeps "
        "its defaults; ours sets deterministic and force_row_wise (reproducible model files), so its metric "
        f"may differ in the last digits. {TIMING_NOTE} Load average (1, 5, 15 min): {load_start} at the start, "
        f"{load_average()} at the end on a shared machine."
    )
    if not args.no_append:
        path = append_results("benchmarks/tasks.py: multiclass and regression, ours vs plain floor", text, notes)
        print(f"appended to {path}")


if __name__ == "__main__":
    main()
