"""A passed validation is reused only for byte-identical inputs (flows/validation_cache.py)."""

from dataclasses import replace

import pandas as pd
import pytest

from components.validation.report import RuleResult, ValidationReport
from flows import steps, validation_cache
from tests.conftest import make_project


@pytest.fixture
def ctx(tmp_path):
    from components.release import registry

    root = make_project(tmp_path / "project", rows=120)
    registry.configure_tracking(root)
    ctx = steps.resolve(root / "params.yaml", out_dir=tmp_path / "run1")
    ctx = steps.fingerprinted(ctx, steps.load(ctx)[1])
    ctx.out_dir.mkdir(parents=True)
    (ctx.out_dir / "validation_report.html").write_text("<p>this dataset&#x27;s training split (no champion dataset to "
                                                        "compare against)</p>")  # fmt: skip
    return ctx


def _report(success: bool = True) -> ValidationReport:
    rule = RuleResult("range", "mean radius", "expect_column_values_to_be_between", "warn", False, 0.1, 3, 2.5)
    return ValidationReport(success, 120, 2, 2 / 120, (rule,), {"psi": {"mean radius": 0.01}}, "breast_cancer")


def test_a_passed_validation_comes_back_with_its_report_files_and_kept_rows(ctx, tmp_path):
    kept = pd.Index(range(2, 120))
    validation_cache.store(ctx, _report(), kept, 120, "note")
    again = replace(ctx, out_dir=tmp_path / "run2")
    reused = validation_cache.lookup(again)
    assert reused is not None and reused.report == _report()
    assert list(reused.kept) == list(kept)
    assert (again.out_dir / "validation_report.html").is_file()  # the run logs the same report


def test_other_inputs_or_a_rejection_are_never_reused(ctx, tmp_path):
    validation_cache.store(ctx, _report(success=False), pd.Index(range(120)), 120, "note")
    assert validation_cache.lookup(ctx) is None  # a rejection raises every time
    validation_cache.store(ctx, _report(), pd.Index(range(120)), 120, "note")
    assert validation_cache.lookup(replace(ctx, out_dir=tmp_path / "same")).kept is None  # every row kept
    assert validation_cache.lookup(replace(ctx, md5="0" * 32)) is None  # other data
    contract = ctx.root / ctx.settings.validate_.contract
    contract.write_text(contract.read_text() + "\n# a comment is a change too\n")
    assert validation_cache.lookup(ctx) is None
    stricter = steps.resolve(ctx.root / "params.yaml", ["validate.max_null_fraction=0.01"], out_dir=ctx.out_dir)
    assert validation_cache.lookup(replace(stricter, md5=ctx.md5)) is None


def test_a_new_champion_on_other_data_is_another_drift_reference(ctx, monkeypatch):
    validation_cache.store(ctx, _report(), pd.Index(range(120)), 120, "note")
    assert validation_cache.lookup(ctx) is not None
    other = steps.DriftReference("f" * 32, "champion v7's dataset (md5 fff..., from the DVC cache)")
    monkeypatch.setattr(validation_cache, "drift_reference_source", lambda c, md5: other)
    assert validation_cache.lookup(ctx) is None


def test_the_reused_report_names_todays_champion(ctx, monkeypatch, tmp_path):
    old = "this dataset's training split (no champion dataset to compare against)"
    validation_cache.store(ctx, _report(), pd.Index(range(120)), 120, old)
    now = f"champion v2's dataset (md5 {ctx.md5}, unchanged)"
    key = validation_cache.cache_key(ctx, steps.drift_reference_source(ctx, ctx.md5))
    monkeypatch.setattr(validation_cache, "drift_reference_source", lambda c, md5: steps.DriftReference("x", now))
    monkeypatch.setattr(validation_cache, "cache_key", lambda c, reference: key)
    again = replace(ctx, out_dir=tmp_path / "run3")
    reused = validation_cache.lookup(again)
    assert reused.reference_note == now
    assert "champion v2&#x27;s dataset" in (again.out_dir / "validation_report.html").read_text()


def test_rows_without_a_target_are_left_out_of_the_drift_reference(ctx):
    """A contract that quarantines unlabelled rows (as `contract infer` drafts it) must not then report the
    labelled rows it kept as a drift of the target away from a reference that still held the blanks."""
    frame, _ = steps.load(ctx)
    blanks = frame.astype({"target": "float64"})
    blanks.loc[blanks.index[::10], "target"] = None
    target = replace(ctx.contract.column("target"), severity={"not_null": "quarantine"})
    columns = tuple(target if c.name == "target" else c for c in ctx.contract.columns)
    quarantining = replace(ctx, contract=replace(ctx.contract, columns=columns, max_quarantine_fraction=0.2))

    reference, note = steps.drift_reference(quarantining, blanks, "0" * 32)  # no champion: this data's training split

    assert "training split" in note and reference["target"].notna().all()
    report, kept, _, _ = steps.check(quarantining, blanks, reference, ctx.out_dir, note)
    assert report.success and report.n_quarantined == 12 and len(kept) == 108
    drifts = {r.column: r.success for r in report.results if r.rule == "drift"}
    assert drifts["target"] is True, report.drift["columns"]["target"]


def test_a_champion_whose_data_cannot_be_found_is_named_in_the_note(ctx, monkeypatch):
    """A champion exists, but its dataset is in no DVC cache (the export was overwritten, never `dvc add`ed):
    the note says which data is missing instead of claiming there is no champion."""
    from components.release import registry

    monkeypatch.setattr(registry, "alias_version", lambda name, alias: "1")
    version = type("V", (), {"tags": {"dataset_md5": "ab" * 16}})()
    monkeypatch.setattr(registry, "client", lambda: type("C", (), {"get_model_version": lambda *a: version})())

    source = steps.drift_reference_source(ctx, "cd" * 16)

    assert source.data == "training split" and source.path is None
    assert (
        source.note
        == f"this dataset's training split (champion v1's dataset, md5 {'ab' * 16}, is not in the DVC cache)"
    )
