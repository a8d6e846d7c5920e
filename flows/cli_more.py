"""`mlops` commands beyond run/status/ingest: contract, validate, promote, rollback, lineage."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flows.runtime import EXIT_NOTHING, EXIT_REJECTED


def _root(args: argparse.Namespace) -> Path:
    return Path(args.params).resolve().parent


def _model_name(args: argparse.Namespace) -> str:
    from components import registry
    from components.config import load_settings

    registry.configure_tracking(_root(args))
    return load_settings(args.params).promote.registered_model


def cmd_contract_infer(args: argparse.Namespace) -> int:
    import dataclasses

    from components.contract import ReadOptions, infer_contract, normalise, read_table, save_contract

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
    from components.contract import load_contract, read_with_contract
    from components.report_html import write_report
    from components.validation import validate_frame

    contract = load_contract(args.contract)
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
    from components.promotion import promote_manually

    name = _model_name(args)
    out = promote_manually(name, str(args.version), reason=args.reason, lock_dir=_root(args) / ".mlops")
    print(f"{name} v{out.champion} is now @champion (previous-champion: {out.previous or 'none'})")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from components.promotion import rollback

    name = _model_name(args)
    out = rollback(name, reason=args.reason, lock_dir=_root(args) / ".mlops")
    print(f"{name}: @champion is back on v{out.champion}")
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    from components.lineage_report import describe_lineage, find_version

    name = _model_name(args)
    version = find_version(name, alias=args.alias, version=args.version, bento=args.bento)
    if version is None:
        print("error: no model version matches", file=sys.stderr)
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
    p.add_argument("--contract", required=True)
    p.add_argument("--report-dir", default="runs/validation", help="where the HTML/JSON report goes")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("promote", help="deliberately promote a version to @champion (recorded)")
    p.add_argument("version", type=int)
    p.add_argument("--reason", required=True)
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("rollback", help="move @champion back to @previous-champion (recorded)")
    p.add_argument("--reason", default="rollback requested")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("lineage", help="bento → version → run → data → commit → params → validation → decision")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--alias")
    group.add_argument("--version")
    group.add_argument("--bento", help="an exact bento tag")
    p.set_defaults(func=cmd_lineage)

    try:
        from flows.cli_serve import add_serve_command
    except ImportError:  # pragma: no cover - the serving module is optional in a partial checkout
        return
    add_serve_command(sub)
