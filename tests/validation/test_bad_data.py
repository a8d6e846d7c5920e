"""The bad-data corpus: each variant must be caught by the right rule, with the right severity.

Two sources. ``VARIANTS``: one synthetic 200-row frame (id, int, nullable float, normal float,
category, binary target) and its inferred-then-fixed contract; every variant breaks one thing.
File-format variants go through a temp file and ``read_with_contract``. ``EXPORT_VARIANTS``: the
messy customer export of ``tests/messy.py`` with the contract ``mlops contract infer`` drafts for
it; each variant corrupts a copy of the CSV file the way real exports go wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.data.contract import Contract, DataReadError, load_contract
from components.data.contract_inference import infer_contract
from components.data.reading import read_with_contract
from components.validation.report import ValidationReport
from components.validation.validate import validate_frame
from flows.cli.main import build_parser
from tests.messy import PAYMENTS, write_messy_export


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
    Variant("null_target", "not_null", "target", "block", _set("target", [8], np.nan), also=(("dtype", "target"),)),
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


def test_a_failure_names_the_bound_it_broke():
    """The message a rejected run prints says what the contract expects, so the fix is in the line itself."""
    frame = _set("age", [3], 130)(GOOD)
    report, _ = validate_frame(frame, CONTRACT, reference=GOOD)
    (age,) = [r for r in report.failures() if r.column == "age"]
    upper = CONTRACT.column("age").max
    assert "range on 'age' (expected min=" in age.describe() and f"max={upper}; observed 1 of 200" in age.describe()
    many = replace(
        CONTRACT,
        columns=tuple(
            replace(c, allowed=[f"c{i}" for i in range(12)]) if c.name == "color" else c for c in CONTRACT.columns
        ),
    )
    report, _ = validate_frame(GOOD, many, reference=GOOD)
    (color,) = [r for r in report.results if not r.success and (r.rule, r.column) == ("allowed", "color")]
    assert "expected allowed=['c0', 'c1', 'c2', 'c3', 'c4', '... 7 more']" in color.describe()


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.id for v in VARIANTS])
def test_bad_variant_is_caught_by_the_right_rule(variant: Variant, tmp_path):
    if variant.outcome == "read_error":
        with pytest.raises(DataReadError, match=variant.match):
            _load(variant, tmp_path)
        return
    frame = _load(variant, tmp_path)
    quarantined = tmp_path / "quarantine.parquet"
    report, kept = validate_frame(frame, CONTRACT, reference=GOOD, quarantine_path=quarantined)
    _assert_caught(variant, report, len(frame) - len(kept), quarantined)


def _assert_caught(
    variant: Variant | ExportVariant, report: ValidationReport, n_removed: int, quarantined: Path
) -> None:
    """The variant's rule failed on its column with its severity, and nothing unexpected blocks."""
    hits = [r for r in report.results if not r.success and (r.rule, r.column) == (variant.rule, variant.column)]
    failed = [r.describe() for r in report.results if not r.success]
    assert hits, f"expected {variant.rule} on {variant.column}; failed: {failed}"
    assert hits[0].severity == variant.outcome
    blocking = {(r.rule, r.column) for r in report.failures()}
    assert blocking <= {(variant.rule, variant.column), *variant.also}, blocking
    assert report.success == (variant.outcome != "block")
    if variant.outcome == "quarantine":
        assert 0 < report.n_quarantined == n_removed
        rejected = pd.read_parquet(quarantined)
        assert rejected["_quarantine_rule"].str.contains(f"{variant.rule}:{variant.column}").all()


# --- the messy customer export ------------------------------------------------------

Corruption = Callable[[Path, Path], None]  # (the clean export, where to write the corrupted copy)
FEW = [3, 10, 40]  # rows a corruption touches when it does not touch them all


def _cells(change: Callable[[pd.DataFrame], pd.DataFrame]) -> Corruption:
    """Edit the export's cells, read back as text exactly as written (blanks as ''), into a copy."""

    def corrupt(src: Path, dst: Path) -> None:
        change(pd.read_csv(src, dtype=str, keep_default_na=False)).to_csv(dst, index=False)

    return corrupt


def _put(column: str, value: str, rows: list[int] = FEW) -> Corruption:
    def change(cells: pd.DataFrame) -> pd.DataFrame:
        cells = cells.copy()
        cells.loc[rows, column] = value
        return cells

    return _cells(change)


def _recode(**mappings: dict[str, str]) -> Corruption:
    """Replace values in every row: ``_recode(Churn={"Yes": "yes"})``."""
    return _cells(lambda cells: cells.replace(mappings))


def _then(*corruptions: Corruption) -> Corruption:
    def corrupt(src: Path, dst: Path) -> None:
        for step in corruptions:
            step(src, dst)
            src = dst

    return corrupt


@dataclass(frozen=True)
class ExportVariant:
    id: str
    rule: str | None  # None: the file is accepted, its values cleaned back to the originals
    column: str | None
    outcome: str  # block | quarantine | accept
    corrupt: Corruption
    also: tuple[tuple[str, str | None], ...] = ()  # other blocking failures this variant may cause
    reading: dict = field(default_factory=dict)  # overrides of the drafted contract's reading options
    columns: dict = field(default_factory=dict)  # column -> rule overrides, as a reviewer tightens a draft


CODES = {name: str(code) for code, name in enumerate(PAYMENTS, start=1)}
BALANCE = (("class_balance", "Churn"),)
KEEP_SPACES = {"strip_whitespace": False}
DUPLICATED_ID = _cells(lambda c: pd.concat([c, c[["customerID"]]], axis=1))
PADDED_ID_HEADER = _cells(lambda c: c.assign(**{"customerID ": c["customerID"]}))

EXPORT_VARIANTS = [
    ExportVariant("unseen_level", "allowed", "Contract", "block", _put("Contract", "Three year")),
    ExportVariant(
        "unseen_level_quarantined",
        "allowed",
        "PaymentMethod",
        "quarantine",
        _put("PaymentMethod", "Crypto wallet"),
        columns={"PaymentMethod": {"on_unseen": "quarantine"}},
    ),
    ExportVariant("label_lower_case", "labels", "Churn", "block", _recode(Churn={"Yes": "yes"}), also=BALANCE),
    ExportVariant(
        "level_lower_case", "allowed", "Contract", "block", _recode(Contract={"Month-to-month": "month-to-month"})
    ),
    ExportVariant(
        "stray_whitespace_stripped",
        None,
        None,
        "accept",  # the draft's reading.strip_whitespace: true strips it
        _recode(Churn={"Yes": " Yes"}, Contract={"Two year": "Two year  "}, gender={"Male": " Male "}),
    ),
    ExportVariant(
        "stray_whitespace_kept_in_label",
        "labels",
        "Churn",
        "block",
        _recode(Churn={"Yes": " Yes"}),
        also=BALANCE,
        reading=KEEP_SPACES,
    ),
    ExportVariant(
        "stray_whitespace_kept_in_level",
        "allowed",
        "Contract",
        "block",
        _recode(Contract={"Two year": "Two year  "}),
        reading=KEEP_SPACES,
    ),
    ExportVariant("whitespace_only_level", "not_null", "Contract", "block", _put("Contract", "   ")),
    ExportVariant("category_as_numbers", "allowed", "PaymentMethod", "block", _recode(PaymentMethod=CODES)),
    ExportVariant(
        "category_as_numbers_with_blank",
        "allowed",
        "PaymentMethod",
        "block",
        _then(_recode(PaymentMethod=CODES), _put("PaymentMethod", "")),
        also=(("not_null", "PaymentMethod"),),
    ),
    ExportVariant("third_label", "labels", "Churn", "block", _put("Churn", "Maybe")),
    ExportVariant("only_one_label", "min_classes", "Churn", "block", _recode(Churn={"Yes": "No"}), also=BALANCE),
    ExportVariant(
        "labels_as_numbers", "labels", "Churn", "block", _recode(Churn={"Yes": "1", "No": "0"}), also=BALANCE
    ),
    ExportVariant("text_in_numeric", "dtype", "TotalCharges", "block", _put("TotalCharges", "n/a pending")),
    ExportVariant("currency_in_numeric", "dtype", "MonthlyCharges", "block", _put("MonthlyCharges", "$70.00")),
    ExportVariant(
        "duplicated_rows", "unique_keys", "customerID", "block", _cells(lambda c: pd.concat([c, c.iloc[:5]]))
    ),
    ExportVariant("duplicated_id_column", "extra_columns", "customerID.1", "block", DUPLICATED_ID),
    ExportVariant("duplicated_id_column_padded_header", "extra_columns", "customerID.1", "block", PADDED_ID_HEADER),
    # yes/no is one of the spellings reading maps to bool (as are true/false and 1/0): accepted, cleaned.
    ExportVariant("bool_as_yes_no", None, None, "accept", _recode(PaperlessBilling={"True": "yes", "False": "no"})),
    ExportVariant("bool_unknown_word", "dtype", "PaperlessBilling", "block", _put("PaperlessBilling", "unknown")),
    ExportVariant("blank_in_bool", "not_null", "PaperlessBilling", "block", _put("PaperlessBilling", "")),
    ExportVariant(
        "bool_as_numbers_with_blank",
        "not_null",
        "PaperlessBilling",
        "block",
        _then(_recode(PaperlessBilling={"True": "1", "False": "0"}), _put("PaperlessBilling", "")),
    ),
    ExportVariant(
        "blank_header",
        "exists",
        "Contract",
        "block",
        _cells(lambda c: c.rename(columns={"Contract": ""})),
        also=(("extra_columns", "Unnamed: 2"),),  # pandas' name for the third, unnamed column
    ),
    ExportVariant(
        "missing_numeric_column", "exists", "TotalCharges", "block", _cells(lambda c: c.drop(columns="TotalCharges"))
    ),
]


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> tuple[Path, Contract, pd.DataFrame]:
    """The clean export, the contract `mlops contract infer` drafts for it, and the export as read."""
    folder = tmp_path_factory.mktemp("export")
    data = write_messy_export(folder / "customers.csv")
    out = folder / "customers.yaml"
    args = build_parser().parse_args(["contract", "infer", "--data", str(data), "--target", "Churn", "--out", str(out)])
    assert args.func(args) == 0  # the command itself, without main()'s logging and environment set-up
    contract = load_contract(out)
    return data, contract, read_with_contract(data, contract)


def test_export_draft_has_what_the_variants_break(export):
    _, contract, clean = export
    assert contract.labels == ["No", "Yes"] and contract.keys == ["customerID"]
    assert contract.column("Contract").allowed == ["Month-to-month", "One year", "Two year"]
    assert contract.column("PaymentMethod").allowed == sorted(PAYMENTS)  # the rare level too
    assert contract.column("PaperlessBilling").dtype == "bool" and contract.reading.strip_whitespace
    report, kept = validate_frame(clean, contract, reference=clean)
    assert report.success and not report.warnings() and len(kept) == len(clean)


def _adjusted(contract: Contract, variant: ExportVariant) -> Contract:
    columns = tuple(replace(c, **variant.columns.get(c.name, {})) for c in contract.columns)
    return replace(contract, columns=columns, reading=replace(contract.reading, **variant.reading))


@pytest.mark.parametrize("variant", EXPORT_VARIANTS, ids=[v.id for v in EXPORT_VARIANTS])
def test_corrupted_export_is_caught_or_cleaned(variant: ExportVariant, export, tmp_path):
    data, drafted, clean = export
    contract = _adjusted(drafted, variant)
    path = tmp_path / "customers.csv"
    variant.corrupt(data, path)
    assert path.read_bytes() != data.read_bytes()  # the corruption did change the file
    frame = read_with_contract(path, contract)
    quarantined = tmp_path / "quarantine.parquet"
    report, kept = validate_frame(frame, contract, reference=clean, quarantine_path=quarantined)
    if variant.outcome == "accept":
        assert report.success, [r.describe() for r in report.failures()]
        assert not report.warnings() and not report.quarantined()
        pd.testing.assert_frame_equal(frame, clean)  # cleaned back to the original values
        return
    _assert_caught(variant, report, len(frame) - len(kept), quarantined)


def test_corpus_has_at_least_twenty_variants():
    ids = [v.id for v in VARIANTS] + [v.id for v in EXPORT_VARIANTS]
    assert len(set(ids)) == len(ids) >= 20
    assert len(EXPORT_VARIANTS) >= 20
