"""`mlops`: the command line over the same components and flows.

Exit codes: 0 ok, 1 unexpected error, 2 bad params or arguments, 3 data missing,
4 data rejected by the contract, 5 nothing to act on (e.g. no champion).
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NoReturn

from components import vocabulary as v
from flows.runtime import EXIT_NOTHING


def cmd_ingest(args: argparse.Namespace) -> int:
    from components.config import load_settings
    from components.data.dataset import file_md5, ingest

    settings = load_settings(args.params)
    root = Path(args.params).resolve().parent
    if settings.data.source.startswith("sklearn:digits"):  # a folder of images, tracked by DVC as one directory
        from components.images.ingest import IMAGE_SOURCES, track_with_dvc, write_digits

        if settings.data.source not in IMAGE_SOURCES:
            from components.config import ConfigError

            raise ConfigError(f"data.source {settings.data.source!r}: the image sources are {', '.join(IMAGE_SOURCES)}")
        folder = root / settings.data.path
        counts = write_digits(folder)
        md5 = track_with_dvc(folder)
        print(f"ingested {settings.data.source} -> {settings.data.path}: {sum(counts.values())} images in "
              f"{len(counts)} label folders; DVC tracks it as {settings.data.path}.dvc (md5 {md5})")  # fmt: skip
        return 0
    from components.dataset_settings import load_configured_contract

    contract = load_configured_contract(settings, root)  # its reading options: a CSV source's delimiter and decimals
    source = settings.data.source  # a file is found from the project, as data.path is
    source = source if source.startswith("sklearn:") or Path(source).is_absolute() else str(root / source)
    out = ingest(source, root / settings.data.path, contract.reading if contract else None)
    print(f"ingested {settings.data.source} -> {settings.data.path} (md5 {file_md5(out)})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from flows import early_validation, temporary_api
    from flows.completed_run import completed_run, run_context

    # On Prefect's temporary API, "nothing changed" is answered before a server starts (seconds saved,
    # no run to show), and the data is validated while it starts. With a Prefect server the flow runs
    # whole, so the skip is recorded in its UI.
    on_temporary_api = not os.environ.get("PREFECT_API_URL")
    with ExitStack() as stack:
        api = None
        if on_temporary_api and _first_run(Path(args.params).resolve().parent):
            api = stack.enter_context(temporary_api.started(True))  # nothing can be unchanged: start it now
        ctx = None
        if on_temporary_api:
            ctx = run_context(params_path=args.params, overrides=args.set, data_path=args.data, contract=args.contract)
            done = None if ctx is None or args.force else completed_run(ctx)
            if done is not None:
                print(done["markdown"])
                return 0
        if api is None:
            api = stack.enter_context(temporary_api.started(ctx is not None))  # while the flow's modules import
        stack.enter_context(early_validation.ahead(ctx, force=args.force))  # the flow's imports overlap it too
        if _image_run(args):
            from flows.image_training import image_training_pipeline as training_pipeline
        else:
            from flows.training import training_pipeline  # Prefect and the training stack: only when there is work

            if ctx is not None and ctx.settings.train.parallel.engine == "local":
                from flows.fitting import warm_fit_imports

                warm_fit_imports()  # while the temporary API starts
        if api is not None:
            api.wait_ready()
        result = training_pipeline(
            params_path=args.params,
            overrides=args.set,
            data_path=args.data,
            contract=args.contract,
            force=args.force,
        )
    print(result["markdown"])
    return 0


def _first_run(root: Path) -> bool:
    """No MLflow store yet (the project's SQLite file, and no MLFLOW_TRACKING_URI): no version can be unchanged."""
    return not os.environ.get("MLFLOW_TRACKING_URI") and not (root / "mlflow.db").exists()  # registry's default


def _image_run(args: argparse.Namespace) -> bool:
    """Whether the run's contract (``--contract``, else ``validate.contract``) is an image contract."""
    from components.config import load_settings
    from components.dataset_settings import is_image_contract, load_any_contract, load_configured_contract

    if args.contract:
        return is_image_contract(load_any_contract(args.contract))
    settings = load_settings(args.params, list(args.set or []))
    return is_image_contract(load_configured_contract(settings, Path(args.params).resolve().parent))


def metric_of(tags: dict[str, str], metric: str | None) -> str:
    """The metric a version is listed by: ``evaluate.primary_metric`` when set, else the one its run chose by."""
    return metric or tags.get(v.TAG_PRIMARY_METRIC) or v.DEFAULT_PRIMARY_METRIC[tags.get(v.TAG_TASK, "binary")]


def model_summaries(alias: str, metric: str | None) -> list[dict[str, Any]]:
    """One row per registered model: its ``alias`` version, latest version, count, test metric, decision.

    Only the alias's run is fetched (for the metric), so listing a store with many versions stays quick.
    """
    from mlflow.exceptions import MlflowException

    from components.release import registry
    from flows.cli.registry import all_pages

    c = registry.client()
    rows = []
    for model in all_pages(c.search_registered_models):
        versions = all_pages(c.search_model_versions, filter_string=f"name='{model.name}'")
        latest = max(versions, key=lambda mv: int(mv.version), default=None)
        champion = registry.alias_version(model.name, alias)
        held = next((mv for mv in versions if str(mv.version) == champion), None)
        run_id, value = (held.run_id if held else None), None
        shown = metric_of(held.tags if held else {}, metric)
        if run_id:
            try:
                value = c.get_run(run_id).data.metrics.get(f"test_{shown}")
            except MlflowException:  # a deleted run still leaves the rest of the listing useful
                value = None
        rows.append(
            {
                "name": model.name,
                "champion": champion,
                "latest": str(latest.version) if latest else None,
                "versions": len(versions),
                "metric": value,
                "metric_name": shown,
                "decision": latest.tags.get(v.TAG_DECISION) if latest else None,
            }
        )
    return sorted(rows, key=lambda r: r["name"])


def _print_all_models(alias: str, metric: str | None) -> int:
    rows = model_summaries(alias, metric)
    if not rows:
        print("no registered models yet: run `mlops run`")
        return EXIT_NOTHING
    width = max(len("model"), *(len(r["name"]) for r in rows))
    print(f"{'model':<{width}}  {alias:>10} {'latest':>6} {'versions':>8} {'test metric':>20}  decision")
    for r in rows:
        value = "-" if r["metric"] is None else f"{r['metric_name']} {r['metric']:.4f}"
        print(
            f"{r['name']:<{width}}  {r['champion'] or '-':>10} {r['latest'] or '-':>6} {r['versions']:>8} "
            f"{value:>20}  {r['decision'] or '-'}"
        )
    return 0


def _print_model_versions(name: str, metric: str | None) -> int:
    from components.release import registry

    rows = registry.list_versions(name)
    if not rows:
        print(f"no versions of '{name}' registered yet: run `mlops run`")
        return EXIT_NOTHING
    metric = metric_of(rows[0]["tags"], metric)  # one column: the newest version's metric
    header = f"{'version':>7}  {'aliases':<28} {'candidate':<10} {'test ' + metric:>13}  {'dataset md5':<12} decision"
    print(f"registered model {name}\n{header}")
    for r in rows:
        t = r["tags"]
        value = r["metrics"].get(f"test_{metric}")
        print(
            f"{r['version']:>7}  {','.join(r['aliases']) or '-':<28} {t.get(v.TAG_CANDIDATE, '-'):<10} "
            f"{'-' if value is None else f'{value:.4f}':>13}  {t.get(v.TAG_DATASET_MD5, '-')[:12]:<12} "
            f"{t.get(v.TAG_DECISION, '-')}: {t.get(v.TAG_DECISION_REASON, '')}"
        )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """With ``--model``: that model's versions. Without: one line per registered model in the store."""
    from components.config import load_settings
    from components.release import registry
    from flows.cli.registry import unknown_model

    settings = load_settings(args.params)
    registry.configure_tracking(Path(args.params).resolve().parent)
    metric = settings.evaluate.primary_metric
    if args.model is None:
        return _print_all_models(settings.promote.alias, metric)
    problem = unknown_model(args.model)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_NOTHING
    return _print_model_versions(args.model, metric)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlops", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="write the configured dataset source into data/ as Parquet")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("run", help="run the training pipeline once")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a params key for this run (repeatable), e.g. train.candidates.hgb.max_iter=50",
    )
    p.add_argument("--data", help="train on this CSV/Parquet file instead of data.path")
    p.add_argument("--contract", help="validate with this data contract (YAML)")
    p.add_argument(
        "--force",
        action="store_true",
        help="train even if a finished version already has this data, params and code",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", help="every registered model, or one model's versions with aliases and metrics")
    p.add_argument("--model", default=None, metavar="NAME", help="list this registered model's versions")
    p.set_defaults(func=cmd_status)

    from flows.cli import data, monitor, predict, registry, serve

    data.add_commands(sub)
    registry.add_commands(sub)
    serve.add_serve_command(sub)
    predict.add_parser(sub)
    monitor.add_parser(sub)
    return parser


# Libraries' INFO lines that only narrate (MLflow's "Validating input example", its store's migrations).
QUIET_LOGGERS = ("alembic", "mlflow.store", "mlflow.pyfunc", "urllib3", "git", "bentoml", "httpx", "great_expectations")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from flows.runtime import prepare_environment

    prepare_environment(Path(args.params).resolve().parent)

    from flows.runtime import exit_code_for, watch_descendants

    if argv is None:  # the `mlops` process itself; a caller of main(argv) (a test) lives on and owns its children
        watch_descendants(args.command)
    try:
        code = args.func(args)
    except Exception as err:
        code = exit_code_for(err)
        if code is None:
            raise
    if argv is None:
        leave(code)
    return code


def leave(code: int) -> NoReturn:
    """End the `mlops` process without tearing the interpreter down.

    Everything a normal exit does for us still happens: threads that are not daemons are stopped and
    waited for, exit handlers run (Prefect stops its temporary API there), logs and streams are flushed.
    What is skipped is freeing every module and object one by one (torch, pandas, GX, MLflow), which
    took 3.7 to 6.4 s after the last exit handler on every run (benchmarks/RESULTS.md, issue 19).
    """
    # What the interpreter does at exit, in its order: threading's own exit hooks (Prefect and MLflow
    # stop their worker threads there), joining the threads that are not daemons, then atexit handlers.
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
