"""`mlops monitor`: late labels against what was scored, or served traffic against the training data.

Exit codes: 0 checked (an alarm is printed and sent as the `mlops.model.drift` event, and still
exits 0: the event, not the exit code, starts the retraining), 3 labels file missing, 4 labels
file unreadable, 5 nothing to check (no champion, no predictions, no label that joins, no traffic).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from flows.runtime import EXIT_NOTHING


def _number(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def _drop(metric: str, drop: float | None) -> str:
    """Points for bounded scores, a share of the test value for error metrics (alarms.RELATIVE_DROP)."""
    from components.monitoring.alarms import RELATIVE_DROP

    if drop is None:
        return "-"
    return f"{drop:.1%}" if metric in RELATIVE_DROP else f"{drop:.4f}"


def _alarm_line(reason: str | None, raised: dict[str, Any] | None) -> str:
    if not reason:
        return "alarm:   none"
    from components.monitoring.alarms import describe_sending

    sent = describe_sending(raised)
    return f"ALARM:   {reason}\n         {sent}"


def print_labels(r: dict[str, Any]) -> None:
    c = r["counts"]
    print(f"labels:  {r['labels']} -> {c['labels']} labelled ids, {c['matched']} joined to predictions in "
          f"{r['predictions']}")  # fmt: skip
    if c["missing"]:
        print(f"missing: {c['missing']} labelled ids have no prediction (e.g. {', '.join(c['missing_examples'])})")
    print(f"extra:   {c['extra']} predictions in the same files have no label")
    if c["repeated"]:
        print(f"repeated: {c['repeated']} ids were scored more than once; each label joined the newest scoring")
    if c["duplicate_labels"]:
        print(f"duplicate labels: {c['duplicate_labels']} (the last label of an id kept)")
    for e in r["versions"]:
        unknown = f"; {e['unknown_labels']} labels the version does not know left out" if e["unknown_labels"] else ""
        print(f"\nversion {e['version']} ({e['task']}, {e['n']} labelled rows{unknown})")
        if e["note"]:
            print(f"  note: {e['note']}")
        print(f"  {'metric':<20} {'realized':>9} {'test':>9} {'drop':>9}  (error metrics: share worse)")
        for m in e["metrics"]:
            mark = " <- primary" if m["metric"] == e["primary_metric"] else ""
            print(f"  {m['metric']:<20} {_number(m['realized']):>9} {_number(m['test']):>9} "
                  f"{_drop(m['metric'], m['drop']):>9}{mark}")  # fmt: skip
        print("  " + _alarm_line(e["alarm"], e["raised"]).replace("\n", "\n  "))
    for item in r["labelled"]:
        print(f"labelled rows: {item['path']} ({item['rows']} rows of batch {item['batch_md5'][:12]})")


def print_served(r: dict[str, Any]) -> None:
    print(f"served:  {r['rows']} recorded rows of {r['model']} v{r['version']}")
    print(f"drift:   {r['verdict']}")
    print(f"report:  {r['report']['html']}")
    print(_alarm_line(r["alarm"], r["raised"]))


def cmd_monitor(args: argparse.Namespace) -> int:
    from components.config import load_settings
    from components.inference.champion import NoChampionError, resolve_champion
    from flows.cli.registry import resolve_model

    name = resolve_model(args)  # prints which models exist when --model names none of them
    if name is None:
        return EXIT_NOTHING
    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since).isoformat()
        except ValueError:
            print(f"error: --since {args.since!r} is not an ISO time (e.g. 2026-12-01T00:00)", file=sys.stderr)
            return 2
    if args.served:
        try:  # before the flow starts Prefect: no champion is one line, not a failed flow run
            resolve_champion(name, load_settings(args.params).promote.alias)
        except NoChampionError as err:
            print(f"error: {err}", file=sys.stderr)
            return EXIT_NOTHING
    from flows.temporary_api import flow_on_api

    # Paths typed on the command line are the shell's: resolve them here, not under the params folder.
    folder = str(Path(args.predictions).resolve()) if args.predictions else "predictions"
    labels = str(Path(args.labels).resolve()) if args.labels else None
    try:
        with flow_on_api("flows.monitoring", "monitor") as monitor:
            result = monitor(labels=labels, served=args.served, model=name, predictions=folder,
                             params_path=args.params, since=since)  # fmt: skip
    except NoChampionError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_NOTHING
    if result["status"] != "ok":
        print(f"nothing to check: {result['message']}", file=sys.stderr)
        return EXIT_NOTHING
    (print_labels if result["kind"] == "labels" else print_served)(result)
    return 0


def add_parser(sub) -> None:
    """Register `monitor` on the `mlops` parser."""
    from flows.cli.registry import add_model_option

    p = sub.add_parser("monitor", help="late labels or served traffic against the model (exit 5: nothing to check)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--labels", metavar="FILE", help="late labels: CSV/Parquet of inference_id and the target")
    what.add_argument("--served", action="store_true", help="drift of the traffic the service recorded")
    add_model_option(p)
    p.add_argument("--predictions", metavar="DIR", default=None,
                   help="where `mlops predict` wrote predictions (default: predictions/)")  # fmt: skip
    p.add_argument("--since", metavar="TIME", default=None, help="--served: only requests at or after this ISO time")
    p.set_defaults(func=cmd_monitor)
