"""Splits by content: duplicates across splits block and are named; our own split keeps them together."""

import shutil

import pytest

from components.images.manifest import scan_images
from components.images.split import split_images, split_leakage
from components.images.validate import validate_images
from tests.images.conftest import digits_contract


@pytest.fixture
def with_copies(digits_dir, tmp_path):
    """The digits plus byte-identical copies of two images, one under another name in the same label."""
    root = tmp_path / "digits"
    shutil.copytree(digits_dir, root)
    shutil.copy(root / "3" / "digit-0003.png", root / "3" / "copy-of-0003.png")
    shutil.copy(root / "0" / "digit-0000.png", root / "0" / "copy-of-0000.png")
    return root


def test_our_split_is_seeded_stratified_and_complete(digits_manifest):
    a = split_images(digits_manifest, test_size=0.2, val_size=0.25, seed=7)
    assert a == split_images(digits_manifest, test_size=0.2, val_size=0.25, seed=7)
    assert a != split_images(digits_manifest, test_size=0.2, val_size=0.25, seed=8)
    paths = [p for part in a.values() for p in part]
    assert sorted(paths) == sorted(digits_manifest["path"]) and len(set(paths)) == len(paths)
    assert len(a["test"]) == pytest.approx(0.2 * 1797, abs=10)
    assert len(a["val"]) == pytest.approx(0.25 * 0.8 * 1797, abs=10)
    for label in "0123456789":  # every class in proportion in every split
        n = int((digits_manifest["label"] == label).sum())
        assert sum(p.startswith(f"{label}/") for p in a["test"]) == pytest.approx(0.2 * n, abs=1)


def test_identical_images_stay_in_one_split(with_copies):
    manifest = scan_images(with_copies)
    for seed in range(5):
        splits = split_images(manifest, test_size=0.3, val_size=0.3, seed=seed)
        home = {p: name for name, part in splits.items() for p in part}
        assert home["3/digit-0003.png"] == home["3/copy-of-0003.png"]
        assert home["0/digit-0000.png"] == home["0/copy-of-0000.png"]
        assert split_leakage(manifest, splits).success


def test_the_same_image_in_two_splits_blocks_and_names_both_files(with_copies):
    manifest = scan_images(with_copies)
    splits = split_images(manifest, test_size=0.2, val_size=0.2, seed=0)
    # move one copy to another split: a leak
    home = {p: name for name, part in splits.items() for p in part}
    other = "test" if home["3/digit-0003.png"] != "test" else "train"
    leaky = {name: [p for p in part if p != "3/copy-of-0003.png"] for name, part in splits.items()}
    leaky[other].append("3/copy-of-0003.png")

    result = split_leakage(manifest, leaky)
    assert not result.success and result.severity == "block" and result.unexpected_count == 2
    both = [f"{home['3/digit-0003.png']}: 3/digit-0003.png", f"{other}: 3/copy-of-0003.png"]
    assert result.examples == [sorted(both)]
    # through the gate: the contract's duplicates_across_splits decides, and the run stops
    v = validate_images(manifest, digits_contract(), splits=leaky)
    assert not v.report.success and [r.rule for r in v.report.failures()] == ["duplicates_across_splits"]
    warned = validate_images(manifest, digits_contract(duplicates_across_splits="warn"), splits=leaky)
    assert warned.report.success and warned.report.warnings()[0].rule == "duplicates_across_splits"


def test_a_split_naming_unknown_files_is_refused(digits_manifest):
    with pytest.raises(ValueError, match="not in the manifest: 9/ghost.png"):
        split_leakage(digits_manifest, {"train": ["9/ghost.png"]})
