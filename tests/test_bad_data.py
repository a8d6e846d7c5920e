"""The bad-data corpus: each variant must be caught by the right rule, with the right severity.

One synthetic 200-row frame (id, int, nullable float, normal float, category,
binary target) and its inferred-then-fixed contract; every variant breaks one
thing. File-format variants go through a temp file and ``read_with_contract``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.contract import Contract, DataReadError, infer_contract, read_with_contract
from components.validation import validate_frame


def make_frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10, 0.4, n).round(2)
    income[rng.choice(n, n // 20, replace=False)] = np.nan
    return pd.DataFrame(
        {
            "id": [f"C{i:05d}" for i in range(n)],
            "age": rng.integers(18, 90, n),
            "income": income,
            "score": rng.normal(0, 1, n),
            "color": rng.choice(["red", "green", "blue"], n),
            "target": np.array([1] * (n * 2 // 5) + [0] * (n - n * 2 // 5)),
        }
    )


def make_contract(frame: pd.DataFrame) -> Contract:
    """Inferred, then fixed by hand: regex on ids, no upper bound but an outlier rule on income,
    unseen colours quarantined."""
    draft = infer_contract(frame, "target", name="corpus")
    fixes = {
        "id": {"regex": r"^C\d{5}$"},
        "income": {"max": None, "max_abs_z": 8.0},
        "color": {"on_unseen": "quarantine"},
    }
    columns = tuple(replace(c, **fixes.get(c.name, {})) for c in draft.columns)
    return replace(draft, columns=columns, max_quarantine_fraction=0.05)


GOOD = make_frame()
CONTRACT = make_contract(GOOD)


def _set(column: str, rows, value) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        if column in frame and frame[column].dtype.kind in "iu" and not float(value).is_integer():
            frame[column] = frame[column].astype("float64")
        frame.loc[rows, column] = value
        return frame

    return mutate


def _csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False)


def _text(content: bytes) -> Callable[[pd.DataFrame, Path], None]:
    def write(frame: pd.DataFrame, path: Path) -> None:
        path.write_bytes(content)

    return write


def _header_only(frame: pd.DataFrame, path: Path) -> None:
    path.write_text(",".join(frame.columns) + "\n")


def _truncated(frame: pd.DataFrame, path: Path) -> None:
    text = frame.to_csv(index=False)
    path.write_text(text[: text.rstrip("\n").rfind(",")])  # cut inside the last row


def _wrong_delimiter(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, sep=";")


def _not_utf8(frame: pd.DataFrame, path: Path) -> None:
    frame = frame.copy()
    frame.loc[7, "color"] = "PLACEHOLDER"
    path.write_bytes(frame.to_csv(index=False).encode().replace(b"PLACEHOLDER", b"gr\xfcn"))


def _strings_in_numeric(frame: pd.DataFrame, path: Path) -> None:
    frame = frame.astype({"age": "str"})
    frame.loc[[3, 9], "age"] = ["abc", "forty"]
    frame.to_csv(path, index=False)


def _swapped(frame: pd.DataFrame, path: Path) -> None:
    """Columns reordered and two headers swapped: 'age' now holds colours, 'color' ages."""
    frame = frame[["target", "color", "age", "id", "income", "score"]]
    frame.columns = ["target", "age", "color", "id", "income", "score"]
    frame.to_csv(path, index=False)


@dataclass(frozen=True)
class Variant:
    id: str
    rule: str | None  # None: the file cannot be read at all
    column: str | None
    outcome: str  # block | warn | quarantine | read_error
    mutate: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    write: Callable[[pd.DataFrame, Path], None] | None = None
    also: tuple[tuple[str, str | None], ...] = ()  # other blocking failures this variant may cause
    match: str = ""  # read_error: text the message must hold


def _drop(col):
    return lambda f: f.drop(columns=[col])


VARIANTS = [
    Variant("nulls_in_non_nullable", "not_null", "score", "block", _set("score", [5, 6, 7], np.nan)),
    Variant("out_of_range", "range", "age", "block", _set("age", [3], 150)),
    Variant("unseen_category", "allowed", "color", "quarantine", _set("color", [0, 1], "purple")),
    Variant("missing_column", "exists", "score", "block", _drop("score")),
    Variant("extra_column", "extra_columns", "debug", "block", lambda f: f.assign(debug=1)),
    Variant("strings_in_numeric", "dtype", "age", "block", write=_strings_in_numeric),
    Variant("duplicate_keys", "unique_keys", "id", "block", _set("id", [1], "C00000")),
    Variant("empty_file", None, None, "read_error", write=_text(b""), match="empty"),
    Variant("header_only", None, None, "read_error", write=_header_only, match="header only"),
    Variant("truncated_last_line", None, None, "read_error", write=_truncated, match="truncated"),
    Variant("labels_outside_set", "labels", "target", "block", _set("target", [0, 4], 2)),
    Variant(
        "single_class",
        "min_classes",
        "target",
        "block",
        lambda f: f.assign(target=1),
        also=(("class_balance", "target"),),
    ),
    Variant("constant_column", "not_constant", "score", "block", lambda f: f.assign(score=0.5)),
    Variant("extreme_outliers", "outliers", "income", "quarantine", _set("income", [10], 1e9)),
    Variant("all_null_column", "null_fraction", "income", "block", lambda f: f.assign(income=np.nan)),
    Variant(
        "swapped_columns_changed_types",
        "dtype",
        "age",
        "block",
        write=_swapped,
        also=(("allowed", "color"), ("quarantine_share", None)),
    ),
    Variant("wrong_delimiter", None, None, "read_error", write=_wrong_delimiter, match="delimiter"),
    Variant("not_utf8", None, None, "read_error", write=_not_utf8, match="column 'color'"),
    Variant(
        "drifted_distribution",
        "drift",
        "score",
        "warn",
        lambda f: f.assign(score=f["score"].abs().clip(upper=2.5)),
    ),
    Variant(
        "quarantine_over_limit",
        "quarantine_share",
        None,
        "block",
        _set("color", list(range(0, 200, 3)), "purple"),
        also=(("allowed", "color"),),
    ),
    Variant(
        "too_few_rows",
        "row_count",
        None,
        "block",
        lambda f: f.iloc[::20],
        also=(("class_balance", "target"),),
    ),
    Variant("id_pattern", "regex", "id", "block", _set("id", [4], "X-4")),
    Variant("class_imbalance", "class_balance", "target", "block", _set("target", list(range(80, 190)), 1)),
    Variant("fractions_in_int_column", "dtype", "age", "block", _set("age", [2], 30.5)),
    Variant(
        "null_target", "not_null", "target", "block", _set("target", [8], np.nan), also=(("dtype", "target"),)
    ),
]


def _load(variant: Variant, tmp_path: Path) -> pd.DataFrame:
    if variant.write is None:
        return variant.mutate(GOOD)
    path = tmp_path / f"{variant.id}.csv"
    variant.write(GOOD, path)
    return read_with_contract(path, CONTRACT)


def test_good_data_passes_clean(tmp_path):
    path = tmp_path / "good.csv"
    _csv(GOOD, path)
    frame = read_with_contract(path, CONTRACT)
    report, kept = validate_frame(frame, CONTRACT, reference=GOOD)
    assert report.success, [r.describe() for r in report.failures()]
    assert not report.warnings() and not report.quarantined()
    assert len(kept) == len(GOOD) and report.drift["drifted"] == []


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.id for v in VARIANTS])
def test_bad_variant_is_caught_by_the_right_rule(variant: Variant, tmp_path):
    if variant.outcome == "read_error":
        with pytest.raises(DataReadError, match=variant.match):
            _load(variant, tmp_path)
        return
    frame = _load(variant, tmp_path)
    report, kept = validate_frame(
        frame, CONTRACT, reference=GOOD, quarantine_path=tmp_path / "quarantine.parquet"
    )
    hits = [
        r for r in report.results if not r.success and (r.rule, r.column) == (variant.rule, variant.column)
    ]
    failed = [r.describe() for r in report.results if not r.success]
    assert hits, f"expected {variant.rule} on {variant.column}; failed: {failed}"
    assert hits[0].severity == variant.outcome
    blocking = {(r.rule, r.column) for r in report.failures()}
    assert blocking <= {(variant.rule, variant.column), *variant.also}, blocking
    assert report.success == (variant.outcome != "block")
    if variant.outcome == "quarantine":
        assert 0 < report.n_quarantined == len(frame) - len(kept)
        rejected = pd.read_parquet(tmp_path / "quarantine.parquet")
        assert rejected["_quarantine_rule"].str.contains(f"{variant.rule}:{variant.column}").all()


def test_corpus_has_at_least_twenty_variants():
    assert len({v.id for v in VARIANTS}) == len(VARIANTS) >= 20
