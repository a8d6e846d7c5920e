"""`mlops predict`: score a batch file with the model's @champion (the `batch-inference` flow)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flows.runtime import EXIT_NOTHING


def cmd_predict(args: argparse.Namespace) -> int:
    """Run the flow; exit 0 scored, 4 rejected (DataRejectedError, via main), 5 no such model or no champion."""
    from components.config import load_settings
    from components.inference.champion import NoChampionError, resolve_champion
    from flows.cli.registry import resolve_model

    name = resolve_model(args)  # prints which models exist when --model names none of them
    if name is None:
        return EXIT_NOTHING
    try:  # before the flow starts Prefect: no champion is one line, not a failed flow run's traceback
        resolve_champion(name, load_settings(args.params).promote.alias)
    except NoChampionError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_NOTHING
    from flows.temporary_api import flow_on_api

    # Paths typed on the command line are the shell's: resolve them here, not under the params folder.
    out = str(Path(args.out).resolve()) if args.out else "predictions"
    chunking = {"chunk_rows": args.chunk_rows} if args.chunk_rows else {}  # else the flow's default
    try:
        with flow_on_api("flows.batch_inference", "batch_inference") as batch_inference:
            meta = batch_inference(data=str(Path(args.data).resolve()), model=name, out=out,
                                   params_path=args.params, **chunking)  # fmt: skip
    except NoChampionError as err:  # the alias was removed while the flow started
        print(f"error: {err}", file=sys.stderr)
        return EXIT_NOTHING
    m, rows, drift = meta["model"], meta["rows"], meta["drift"]
    print(f"scored {rows['scored']} of {rows['read']} rows with {m['name']} v{m['version']} ({m['uri']}); "
          f"{rows['quarantined']} quarantined")  # fmt: skip
    print(f"predictions: {meta['predictions']}")
    print(f"metadata:    {meta['metadata_path']}")
    print(f"drift:       {drift['verdict']}" + (f" vs {drift['reference']}" if drift.get("reference") else ""))
    if drift.get("report"):
        print(f"drift report: {drift['report']['html']} (and .json; logged to MLflow {drift.get('mlflow', '-')})")
    alarm = meta.get("alarm")
    if alarm:
        from components.monitoring.alarms import describe_sending

        print(f"ALARM:       {alarm['reason']} ({describe_sending(alarm)})")
    return 0


def add_parser(sub) -> None:
    """Register `predict` on the `mlops` parser."""
    from flows.cli.registry import add_model_option

    p = sub.add_parser("predict", help="score a batch file with the model's @champion (exit 4 when rejected)")
    p.add_argument("--data", required=True, help="the batch: a CSV or Parquet file")
    add_model_option(p)
    p.add_argument("--out", default=None, help="folder for predictions and metadata (default: predictions/)")
    p.add_argument(
        "--chunk-rows",
        type=int,
        default=None,
        help="rows validated and scored at a time (memory bound; default: batch.chunk_rows in params.yaml)",
    )
    p.set_defaults(func=cmd_predict)
