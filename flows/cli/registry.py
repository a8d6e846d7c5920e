"""`mlops` commands beyond run/status/ingest: contract, validate, promote, rollback, lineage."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flows.runtime import EXIT_CONFIG, EXIT_NOTHING, EXIT_REJECTED


def _root(args: argparse.Namespace) -> Path:
    return Path(args.params).resolve().parent


def add_model_option(parser: argparse.ArgumentParser) -> None:
    """`--model NAME`: which registered model a command acts on (a store can hold one per dataset)."""
    parser.add_argument(
        "--model",
        default=None,
        metavar="NAME",
        help="registered model (default: promote.registered_model, else the name of validate.contract's contract)",
    )


def all_pages(search: Callable[..., Any], **kwargs: Any) -> list[Any]:
    """Every result of an MLflow ``search_*`` call, following page tokens (a page holds 100 models)."""
    results: list[Any] = []
    token = None
    while True:
        page = search(page_token=token, **kwargs)
        results.extend(page)
        token = page.token
        if not token:
            return results


def registered_model_names() -> list[str]:
    """Names of every registered model in the tracking store, sorted."""
    from components.release import registry

    return sorted(m.name for m in all_pages(registry.client().search_registered_models))


def unknown_model(name: str) -> str | None:
    """A one-line error when ``name`` is not a registered model (naming the ones that are), else None."""
    from mlflow.exceptions import MlflowException

    from components.release import registry

    try:
        registry.client().get_registered_model(name)
        return None
    except MlflowException as err:
        if err.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise  # an unreachable server is not "no such model"
    names = registered_model_names()
    known = ", ".join(names) if names else "none yet: run `mlops run`"
    return f"no registered model '{name}' (registered: {known})"


def resolve_model(args: argparse.Namespace, *, check: bool = True) -> str | None:
    """The registered model a command acts on, with tracking configured; None (after an error) if unknown.

    ``--model`` wins; otherwise the params' model, else its contract's name (a ConfigError names the key).
    ``check=False`` skips the existence check for commands whose own error already covers it.
    """
    from components.dataset_settings import default_model_name
    from components.release import registry

    registry.configure_tracking(_root(args))
    name = args.model or default_model_name(args.params)
    problem = unknown_model(name) if check else None
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return None
    return name


def cmd_contract_infer(args: argparse.Namespace) -> int:
    import dataclasses

    from components.data.contract import ReadOptions, infer_contract, normalise, read_table, save_contract

    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"error: {out} exists; pass --force to overwrite it", file=sys.stderr)
        return 2
    reading = ReadOptions(
        na_values=args.na_values.split(",") if args.na_values is not None else ReadOptions().na_values,
        delimiter=args.delimiter,
        label_strip_suffix=args.label_strip_suffix,
    )
    frame = read_table(args.data, reading)
    if args.target not in frame.columns:
        print(
            f"error: target column '{args.target}' is not in {args.data} "
            f"(columns: {', '.join(map(str, frame.columns))})",
            file=sys.stderr,
        )
        return 2
    draft = dataclasses.replace(infer_contract(frame, args.target, name=out.stem), reading=reading)
    # Infer again on the normalised frame so bounds and labels see what validation will see.
    contract = dataclasses.replace(infer_contract(normalise(frame, draft), args.target, name=out.stem), reading=reading)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_contract(contract, out)
    print(f"wrote draft contract {out} ({frame.shape[1]} columns, {len(frame)} rows): review and tighten it")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from components.data.contract import load_contract, read_with_contract
    from components.validation.checks import validate_frame
    from components.validation.report_html import write_report

    if args.contract:
        contract = load_contract(args.contract)
    else:
        from components.config import load_settings
        from components.dataset_settings import load_configured_contract

        contract = load_configured_contract(load_settings(args.params), _root(args))
        if contract is None:
            print(
                f"error: no --contract given and validate.contract is null in {args.params}: "
                "pass --contract or set validate.contract",
                file=sys.stderr,
            )
            return EXIT_CONFIG
    out_dir = Path(args.report_dir)
    frame = read_with_contract(args.data, contract)
    report, _ = validate_frame(frame, contract, quarantine_path=out_dir / "quarantine.csv")
    html = write_report(report, out_dir, title=f"Validation of {args.data}")
    for r in report.results:
        if not r.success:
            print(
                f"{r.severity:>10}  {r.rule:<28} {r.column or '-':<24} {r.unexpected_count} unexpected "
                f"({r.unexpected_percent:.2f}%)  observed: {r.observed}"
            )
    verdict = "accepted" if report.success else "REJECTED"
    print(
        f"{verdict}: {len(report.failures())} blocking, {len(report.warnings())} warnings, "
        f"{report.n_quarantined} rows quarantined; report: {html}"
    )
    return 0 if report.success else EXIT_REJECTED


def cmd_promote(args: argparse.Namespace) -> int:
    from components.release.promotion import promote_manually

    name = resolve_model(args)
    if name is None:
        return EXIT_NOTHING
    out = promote_manually(name, str(args.version), reason=args.reason, lock_dir=_root(args) / ".mlops")
    print(f"{name} v{out.champion} is now @champion (previous-champion: {out.previous or 'none'})")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from components.release.promotion import PromotionError, rollback

    name = resolve_model(args, check=False)
    try:
        out = rollback(name, reason=args.reason, lock_dir=_root(args) / ".mlops")
    except PromotionError as err:
        # An unknown model has no previous champion either: keep rollback's own message, add which models exist.
        problem = unknown_model(name)
        if problem is None:
            raise
        raise PromotionError(f"{err}; {problem}") from None
    print(f"{name}: @champion is back on v{out.champion}")
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    from components.release.lineage_report import describe_lineage, find_version

    name = resolve_model(args)
    if name is None:
        return EXIT_NOTHING
    version = find_version(name, alias=args.alias, version=args.version, bento=args.bento)
    if version is None:
        asked = next(f"--{k} {v}" for k in ("alias", "version", "bento") if (v := getattr(args, k)))
        print(f"error: no version of '{name}' matches {asked}", file=sys.stderr)
        return EXIT_NOTHING
    print(describe_lineage(name, version))
    return 0


def add_commands(sub) -> None:
    """Register the extra sub-commands on the `mlops` parser."""
    contract = sub.add_parser("contract", help="data contracts").add_subparsers(dest="contract_cmd", required=True)
    p = contract.add_parser("infer", help="draft a contract from a reference dataset")
    p.add_argument("--data", required=True, help="reference CSV or Parquet file")
    p.add_argument("--target", required=True, help="the label column")
    p.add_argument("--out", required=True, help="where to write the YAML contract")
    p.add_argument("--force", action="store_true", help="overwrite an existing contract")
    p.add_argument("--delimiter", help="CSV delimiter (default ',')")
    p.add_argument("--na-values", help="comma-separated missing-value markers (default: '',NA,N/A,NaN,null,?)")
    p.add_argument("--label-strip-suffix", help="suffix to strip from labels, e.g. '.'")
    p.set_defaults(func=cmd_contract_infer)

    p = sub.add_parser("validate", help="validate a dataset against a contract (exit 4 when rejected)")
    p.add_argument("--data", required=True)
    p.add_argument("--contract", help="data contract (YAML; default: validate.contract in params)")
    p.add_argument("--report-dir", default="runs/validation", help="where the HTML/JSON report goes")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("promote", help="deliberately promote a version to @champion (recorded)")
    p.add_argument("version", type=int)
    p.add_argument("--reason", required=True)
    add_model_option(p)
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("rollback", help="move @champion back to @previous-champion (recorded)")
    p.add_argument("--reason", default="rollback requested")
    add_model_option(p)
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("lineage", help="bento → version → run → data → commit → params → validation → decision")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--alias")
    group.add_argument("--version")
    group.add_argument("--bento", help="an exact bento tag")
    add_model_option(p)
    p.set_defaults(func=cmd_lineage)

    try:
        from flows.cli.serve import add_serve_command
    except ImportError:  # pragma: no cover - the serving module is optional in a partial checkout
        return
    add_serve_command(sub)
