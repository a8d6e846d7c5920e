"""The manifest of an image folder: one row per file, corrupt files recorded with why, never raised."""

import hashlib

from components.images.manifest import MANIFEST_DTYPES, inspect_image, scan_images


def test_clean_digits(digits_manifest):
    m = digits_manifest
    assert list(m.columns) == list(MANIFEST_DTYPES) and len(m) == 1797
    assert m["readable"].all() and m["error"].isna().all()
    assert set(m["mode"]) == {"L"} and set(m["width"]) == {8} and set(m["height"]) == {8}
    assert m["path"].is_monotonic_increasing
    row = m.set_index("path").loc["3/digit-0003.png"]
    assert row["label"] == "3" and row["size_bytes"] > 0


def test_corrupt_and_odd_files(spoiled):
    m = scan_images(spoiled).set_index("path")
    assert len(m) == 1797 + 5  # the hidden .DS_Store is skipped
    truncated, text = m.loc["3/truncated.png"], m.loc["5/notes.png"]
    assert not truncated["readable"] and truncated["error"].startswith("truncated")
    assert not text["readable"] and text["error"].startswith("not an image")
    assert text["sha256"] == hashlib.sha256((spoiled / "5" / "notes.png").read_bytes()).hexdigest()
    big, colour = m.loc["4/big.png"], m.loc["7/colour.png"]
    assert big["readable"] and (big["width"], big["height"], big["mode"]) == (16, 16, "L")
    assert colour["readable"] and colour["mode"] == "RGB"
    assert m.loc["x/stray.png", "label"] == "x"


def test_bytes_of_every_kind_of_breakage():
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 40  # a PNG signature with garbage after it
    assert inspect_image(b"")["error"] == "empty file"
    assert not inspect_image(png)["readable"]
    assert inspect_image(b"GIF89a-not-really")["readable"] is False


def test_a_file_in_the_root_has_no_label(tmp_path):
    (tmp_path / "loose.png").write_bytes(b"x")
    assert scan_images(tmp_path).loc[0, "label"] == ""
