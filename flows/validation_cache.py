"""A passed validation, reused when a run checks byte-identical inputs again (issue 19).

A run that changes one candidate's params validates the same data against the same contract, drift
reference and validation code as the run before it: the same report, to the byte. Checking it again
cost 11-12 s (Great Expectations in a child process) of a 17-25 s run. So a passed validation is kept
under ``.mlops/validation-cache/<key>``: its report files, its rule results and which rows it kept.
The key holds everything the result depends on: the dataset md5, the contract file's md5, the
settings validation reads, the champion whose data is the drift reference (version and dataset md5),
and the source of the validation code. A rejection is never kept (it raises, every time), ``--force``
validates afresh, and a run without a contract file (the basic checks drafted from the data) always
validates.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.fingerprint import code_fingerprint, dataset_fingerprint
from flows.steps import DriftReference, RunContext, drift_reference_source

VALIDATION_CODE = ["components.validation", "components.data", "components.dataset_settings", "flows.steps"]
RESULT = "result.json"


@dataclass(frozen=True)
class CachedValidation:
    report: Any  # ValidationReport
    kept: Any  # the index of the kept rows, or None: every row
    reference_note: str
    key: str

    def note(self) -> str:
        return (f"validation reused: the same data, contract, drift reference and validation code passed before "
                f"(.mlops/validation-cache/{self.key}); --force validates again")  # fmt: skip


def cache_key(ctx: RunContext, reference: DriftReference) -> str | None:
    """What a validation of ``ctx``'s data depends on, hashed; None when it is not reusable. The drift
    reference counts by its data: a new champion trained on the same dataset changes nothing checked."""
    if ctx.contract is None or not ctx.md5:
        return None
    s = ctx.settings
    inputs = {
        "dataset_md5": ctx.md5,
        "contract_md5": dataset_fingerprint(ctx.root / s.validate_.contract),
        "validate": s.validate_.model_dump(mode="json", by_alias=True),
        "split": {k: getattr(s.data, k) for k in ("target", "test_size", "val_size", "seed")},
        "task": ctx.task,
        "drift_reference": reference.data,
        "code": code_fingerprint(VALIDATION_CODE),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _folder(ctx: RunContext, key: str) -> Path:
    return ctx.root / ".mlops" / "validation-cache" / key


def current_key(ctx: RunContext) -> tuple[str | None, bool]:
    """The key of a validation of ``ctx``'s inputs today (None: not reusable), and whether one is kept."""
    key = cache_key(ctx, drift_reference_source(ctx, ctx.md5))
    return key, key is not None and (_folder(ctx, key) / RESULT).is_file()


def lookup(ctx: RunContext) -> CachedValidation | None:
    """The kept validation of these exact inputs, its report files copied into ``ctx.out_dir``; else None."""
    import pandas as pd

    from components.validation.report import RuleResult, ValidationReport

    reference = drift_reference_source(ctx, ctx.md5)
    key = cache_key(ctx, reference)
    folder = None if key is None else _folder(ctx, key)
    if folder is None or not (folder / RESULT).is_file():
        return None
    data = json.loads((folder / RESULT).read_text())
    saved = data["report"]
    report = ValidationReport(**{**saved, "results": tuple(RuleResult(**r) for r in saved["results"])})
    shutil.copytree(folder / "report", ctx.out_dir, dirs_exist_ok=True)
    _renamed_reference(ctx.out_dir, data["reference_note"], reference.note)
    kept = None if data["kept"] is None else pd.Index(data["kept"])
    return CachedValidation(report, kept, reference.note, key)


def _renamed_reference(report_dir: Path, old: str, new: str) -> None:
    """The copied report names today's champion: the same reference data may have come with another version."""
    import html

    if old == new:
        return
    for name, (was, now) in {"validation_report.html": (html.escape(old), html.escape(new)),
                             "validation_report.json": (json.dumps(old), json.dumps(new))}.items():  # fmt: skip
        path = report_dir / name
        if path.is_file():
            path.write_text(path.read_text(encoding="utf-8").replace(was, now), encoding="utf-8")


def store(ctx: RunContext, report: Any, kept: Any, n_rows: int, reference_note: str) -> None:
    """Keep a passed validation of ``ctx``'s inputs (report files from ``ctx.out_dir``) for the next run."""
    import pandas as pd

    key = cache_key(ctx, drift_reference_source(ctx, ctx.md5))
    if key is None or not report.success:
        return
    if len(kept) == n_rows:
        rows = None
    elif pd.api.types.is_integer_dtype(kept):
        rows = [int(i) for i in kept]
    else:
        return  # an index JSON cannot give back exactly: validate again next time
    folder = _folder(ctx, key)
    tmp = folder.with_name(f".{key}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(ctx.out_dir, tmp / "report")
    data = {"report": report.to_dict(), "kept": rows, "reference_note": reference_note}
    (tmp / RESULT).write_text(json.dumps(data))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)  # whole or absent: a run reading it never sees half a result
