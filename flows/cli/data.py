"""`mlops contract infer` and `mlops validate`: data contracts and the validation gate from the shell."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from flows.runtime import EXIT_CONFIG, EXIT_REJECTED

if TYPE_CHECKING:  # the CLI's parser is built without importing pandas or the contract model
    import pandas as pd

    from components.data.contract import Contract, ReadOptions
    from components.data.csv_dialect import Dialect


def cmd_contract_infer(args: argparse.Namespace) -> int:
    import dataclasses

    from components.data.contract import ReadOptions
    from components.data.contract_inference import guess_task, infer_contract
    from components.data.contract_yaml import save_contract
    from components.data.reading import normalise, read_table
    from components.model.tasks import TASKS

    if args.task is not None and args.task not in TASKS:
        print(f"error: --task {args.task!r} is not one of {', '.join(TASKS)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"error: {out} exists; pass --force to overwrite it", file=sys.stderr)
        return 2
    reading = ReadOptions(  # checked first: an unknown --encoding is an error naming reading.encoding
        na_values=args.na_values.split(",") if args.na_values is not None else ReadOptions().na_values,
        label_strip_suffix=args.label_strip_suffix,
        encoding=args.encoding,
    )
    dialect = _dialect(args)
    reading = dataclasses.replace(
        reading, delimiter=dialect.delimiter if dialect.delimiter != "," else None, decimal=dialect.decimal
    )
    frame = read_table(args.data, reading)
    if args.target not in frame.columns:
        names = [str(c) for c in frame.columns]
        shown = ", ".join(names[:20]) + (f", ... ({len(names) - 20} more)" if len(names) > 20 else "")
        print(f"error: target column '{args.target}' is not in {args.data} (columns: {shown})", file=sys.stderr)
        return 2
    task, reason = (args.task, "given with --task") if args.task else guess_task(frame[args.target])
    draft = dataclasses.replace(infer_contract(frame, args.target, name=out.stem, task=task), reading=reading)
    # Infer again on the normalised frame so task, bounds and labels see what validation will see
    # ("<=50K." and "<=50K" are one label once the suffix is cut).
    normalised = normalise(frame, draft)
    if not args.task:
        task, reason = guess_task(normalised[args.target])
    contract = dataclasses.replace(infer_contract(normalised, args.target, name=out.stem, task=task), reading=reading)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_contract(contract, out, task_reason=None if args.task else reason)
    print(f"task: {task} ({reason}); edit task: in the contract if wrong")
    if unlabelled := int(normalised[args.target].isna().sum()):
        print(
            f"{unlabelled} of {len(frame)} rows have no '{args.target}': the draft quarantines them "
            f"(columns.{args.target}.severity.not_null: quarantine; max_quarantine_fraction "
            f"{contract.max_quarantine_fraction:g}) instead of rejecting the file"
        )
    if repeated := _repeated_header_names(args.data, reading):
        print(f"the header repeats {', '.join(repr(n) for n in repeated)}: the draft names the copies "
              "<name>.1, <name>.2, ... (rename them in the export if they hold different things)")  # fmt: skip
    if left_out := _not_features(contract, normalised):
        print(f"not trained on (feature: false in the draft): {left_out}")
    print(f"wrote draft contract {out} ({frame.shape[1]} columns, {len(frame)} rows): review and tighten it")
    return 0


def _not_features(contract: Contract, frame: pd.DataFrame) -> str:
    """The columns the draft keeps out of training, each with why: a silent omission looks like a bug."""
    reasons = []
    for column in contract.columns:
        if column.feature or column.name == contract.target:
            continue
        if column.name in contract.keys or column.dtype == "int":
            why = "an identifier" + (", the contract's key" if column.name in contract.keys else "")
        else:
            why = f"text with {frame[column.name].nunique()} distinct values"
        reasons.append(f"'{column.name}' ({why})")
    return ", ".join(reasons)


def _repeated_header_names(data: str, reading: ReadOptions) -> list[str]:
    from components.data.csv_dialect import repeated_names

    if Path(data).suffix.lower() in (".parquet", ".pq"):
        return []  # Parquet column names are unique
    return repeated_names(data, reading.encoding, reading.delimiter or ",")


def _dialect(args: argparse.Namespace) -> Dialect:
    """The CSV's delimiter and decimal mark: as given, else read off the file's first lines (and said)."""
    from components.data.csv_dialect import Dialect, sniff_dialect

    if Path(args.data).suffix.lower() in (".parquet", ".pq") or not Path(args.data).is_file():
        return Dialect()
    sniffed = sniff_dialect(args.data, args.encoding)
    delimiter = args.delimiter or sniffed.delimiter
    decimal = args.decimal or (sniffed.decimal if delimiter == sniffed.delimiter else ".")
    if (delimiter, decimal) != (",", ".") and not (args.delimiter and args.decimal):
        comma = " with decimal commas" if decimal == "," else ""
        print(f"read as {delimiter!r}-separated{comma} (seen in the file's first lines; --delimiter, --decimal to set)")
    return Dialect(delimiter=delimiter, decimal=decimal)


def cmd_validate(args: argparse.Namespace) -> int:
    from components.data.dataset import file_md5
    from components.data.reading import read_with_contract
    from components.validation.report_html import report_header, write_report
    from components.validation.validate import validate_frame

    if args.contract:
        from components.dataset_settings import load_any_contract

        contract = load_any_contract(args.contract)
    else:
        from components.config import load_settings
        from components.dataset_settings import load_configured_contract

        contract = load_configured_contract(load_settings(args.params), Path(args.params).resolve().parent)
        if contract is None:
            print(
                f"error: no --contract given and validate.contract is null in {args.params}: "
                "pass --contract or set validate.contract",
                file=sys.stderr,
            )
            return EXIT_CONFIG
    out_dir = Path(args.report_dir)
    if getattr(contract, "kind", "table") == "images":
        return _validate_images(args, contract, out_dir)
    frame = read_with_contract(args.data, contract)
    report, _ = validate_frame(frame, contract, quarantine_path=out_dir / "quarantine.csv")
    header = report_header(dataset=Path(args.data).resolve(), md5=file_md5(args.data), contract=contract.name,
                           contract_source=args.contract or f"validate.contract in {args.params}",
                           drift_reference="none (mlops validate measures no drift)")  # fmt: skip
    html = write_report(report, out_dir, title=f"Validation of {args.data}", header=header)
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


def _validate_images(args: argparse.Namespace, contract, out_dir: Path) -> int:
    """`mlops validate` of a folder of images against an image contract: the files each rule flagged, the report."""
    from components.fingerprint import dataset_fingerprint
    from components.images.manifest import scan_images
    from components.images.report import write_image_report
    from components.images.validate import validate_images
    from components.validation.report_html import report_header

    folder = Path(args.data)
    checked = validate_images(scan_images(folder), contract)
    header = report_header(dataset=folder.resolve(), md5=dataset_fingerprint(folder) + ".dir", contract=contract.name,
                           contract_source=args.contract or f"validate.contract in {args.params}",
                           drift_reference="none (images)")  # fmt: skip
    html = write_image_report(checked, folder, out_dir, title=f"Validation of {args.data}", header=header)
    for finding in checked.findings.itertuples():
        print(f"{finding.severity:>10}  {finding.rule:<16} {finding.path}: {finding.detail}")
    report = checked.report
    for r in report.results:
        if not r.success and r.rule not in set(checked.findings["rule"]):
            print(f"{r.severity:>10}  {r.rule:<16} observed: {r.observed}")
    verdict = "accepted" if report.success else "REJECTED"
    print(f"{verdict}: {len(report.failures())} blocking, {len(report.warnings())} warnings, "
          f"{report.n_quarantined} files quarantined; report: {html}")  # fmt: skip
    return 0 if report.success else EXIT_REJECTED


def add_commands(sub) -> None:
    """Register `contract infer` and `validate` on the `mlops` parser."""
    contract = sub.add_parser("contract", help="data contracts").add_subparsers(dest="contract_cmd", required=True)
    p = contract.add_parser("infer", help="draft a contract from a reference dataset")
    p.add_argument("--data", required=True, help="reference CSV or Parquet file")
    p.add_argument("--target", required=True, help="the label column")
    p.add_argument("--out", required=True, help="where to write the YAML contract")
    p.add_argument("--force", action="store_true", help="overwrite an existing contract")
    p.add_argument("--delimiter", help="CSV delimiter (default: read off the file; ',' when unclear)")
    p.add_argument("--decimal", choices=(".", ","), help="decimal mark of a CSV (default: read off the file)")
    p.add_argument("--encoding", default="utf-8", help="text encoding of a CSV, e.g. cp1252 (default: utf-8)")
    p.add_argument("--na-values", help="comma-separated missing-value markers (default: '',NA,N/A,NaN,null,?)")
    p.add_argument("--label-strip-suffix", help="suffix to strip from labels, e.g. '.'")
    # no choices=: the task names live in components.model.tasks, which building the parser should not import
    p.add_argument("--task", help="binary | multiclass | regression (default: guessed from the target)")
    p.set_defaults(func=cmd_contract_infer)

    p = sub.add_parser("validate", help="validate a dataset against a contract (exit 4 when rejected)")
    p.add_argument("--data", required=True, help="a CSV or Parquet file, or a folder of images (image contract)")
    p.add_argument("--contract", help="data contract (YAML; default: validate.contract in params)")
    p.add_argument("--report-dir", default="runs/validation", help="where the HTML/JSON report goes")
    p.set_defaults(func=cmd_validate)
