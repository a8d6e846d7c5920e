"""The image gate: GX checks on the manifest, quarantine vs block by severity, class counts and balance."""

import pandas as pd

from components.images.manifest import scan_images
from components.images.validate import validate_images
from tests.images.conftest import digits_contract

SPOILED = {"3/truncated.png", "5/notes.png", "4/big.png", "7/colour.png", "x/stray.png"}


def _result(validation, rule):
    return next(r for r in validation.report.results if r.rule == rule)


def test_clean_digits_pass(digits_manifest):
    v = validate_images(digits_manifest, digits_contract())
    assert v.report.success and v.report.n_rows == 1797 and v.report.n_quarantined == 0
    assert len(v.kept) == 1797 and v.findings.empty
    # the file rules ran as Great Expectations expectations
    assert _result(v, "wrong_size").expectation == "expect_column_values_to_be_in_set"


def test_quarantine_and_block_by_severity(spoiled):
    manifest = scan_images(spoiled)
    v = validate_images(manifest, digits_contract())
    # unknown_label is block: the stray folder stops the run, and the report says which file
    assert not v.report.success
    assert [r.rule for r in v.report.failures()] == ["unknown_label"]
    assert _result(v, "unknown_label").examples == ["x/stray.png"]
    assert v.files("block") == ["x/stray.png"]
    # the rest are quarantined, each named with why
    assert v.files("quarantine") == sorted(SPOILED - {"x/stray.png"})
    why = v.findings.set_index("path")
    assert why.loc["3/truncated.png", "rule"] == "unreadable" and "truncated" in why.loc["3/truncated.png", "detail"]
    assert why.loc["5/notes.png", "detail"].startswith("not an image")
    assert why.loc["4/big.png", "rule"] == "wrong_size" and why.loc["4/big.png", "detail"] == "16x16, expected 8x8"
    assert why.loc["7/colour.png", "rule"] == "wrong_mode"
    assert len(v.kept) == len(manifest) - 4 and not set(v.kept["path"]) & (SPOILED - {"x/stray.png"})
    # GX counted what pandas names
    assert {r.rule: r.unexpected_count for r in v.report.quarantined()} == {
        "unreadable": 2,
        "wrong_size": 1,
        "wrong_mode": 1,
    }
    assert v.report.n_quarantined == 4

    # the same files with every rule at quarantine: the run goes on without them
    lenient = validate_images(manifest, digits_contract(severity={"unknown_label": "quarantine"}))
    assert lenient.report.success and lenient.report.n_quarantined == 5
    # ... and at block: nothing is set aside, the run stops and names all five
    strict = {rule: "block" for rule in ("unreadable", "wrong_size", "wrong_mode", "unknown_label")}
    blocked = validate_images(manifest, digits_contract(severity=strict))
    assert not blocked.report.success and blocked.report.n_quarantined == 0
    assert blocked.files("block") == sorted(SPOILED)


def test_too_many_quarantined_files_block(spoiled):
    manifest = scan_images(spoiled)
    v = validate_images(manifest, digits_contract(max_quarantine_fraction=0.001))
    share = _result(v, "quarantine_share")
    assert not share.success and share.severity == "block" and "3/truncated.png" in share.examples


def test_resize_fit_records_instead_of_quarantining(spoiled):
    v = validate_images(scan_images(spoiled), digits_contract(resize="fit", severity={}))
    assert "wrong_size" not in {r.rule for r in v.report.results}
    assert v.resized == ("4/big.png",) and "4/big.png" in set(v.kept["path"])
    assert _result(v, "resized").success


def _thin(manifest: pd.DataFrame, label: str, keep: int) -> pd.DataFrame:
    rows = manifest["label"] == label
    return pd.concat([manifest[~rows], manifest[rows].head(keep)], ignore_index=True)


def test_min_per_class_and_class_balance(digits_manifest):
    few_sevens = _thin(digits_manifest, "7", 40)
    v = validate_images(few_sevens, digits_contract())
    short, balance = _result(v, "min_per_class"), _result(v, "class_balance")
    assert not short.success and short.examples == ["7"] and short.observed["7"] == 40
    assert not balance.success and balance.observed["smallest"] == {"7": 40}
    assert {r.rule for r in v.report.failures()} == {"min_per_class", "class_balance"}

    # 100 sevens: enough of them, but the largest class (183 threes) is more than 1.5 times that
    uneven = validate_images(_thin(digits_manifest, "7", 100), digits_contract(max_class_ratio=1.5))
    assert _result(uneven, "min_per_class").success and not _result(uneven, "class_balance").success
    assert _result(uneven, "class_balance").observed["ratio"] == 1.83

    # a missing class counts as zero images
    none = validate_images(digits_manifest[digits_manifest["label"] != "0"], digits_contract(severity={}))
    assert _result(none, "min_per_class").observed["0"] == 0 and not none.report.success


def test_the_input_manifest_is_not_modified(spoiled):
    manifest = scan_images(spoiled)
    before = manifest.copy()
    validate_images(manifest, digits_contract())
    pd.testing.assert_frame_equal(manifest, before)
