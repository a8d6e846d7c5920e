"""Ingest of the bundled digits: folder layout, pixel scaling, and bytes that never vary."""

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from components.fingerprint import dataset_fingerprint
from components.images.ingest import write_digits

# The DVC directory hash (without ".dir") of the written digits. It changes only if the bytes do,
# e.g. when a Pillow release writes PNGs differently: then every machine sees a new dataset version.
DIGITS_DIR_MD5 = "eba493190599abf974a57128037e914f"


def _all_bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_layout_counts_and_ids(digits_dir):
    target = load_digits().target
    counts = {str(d): int((target == d).sum()) for d in range(10)}
    files = sorted(p.relative_to(digits_dir).as_posix() for p in digits_dir.rglob("*") if p.is_file())
    assert len(files) == 1797 == sum(counts.values())
    assert {f.split("/")[0] for f in files} == set(counts)
    # ids are the dataset's row index: row 3 is a "3", row 10 a "0"
    assert "3/digit-0003.png" in files and "0/digit-0010.png" in files and "1/digit-1796.png" not in files[:10]
    assert f"{target[1796]}/digit-1796.png" in files


def test_pixels_are_gray_scaled_to_0_255_and_lossless(digits_dir):
    digits = load_digits()
    row = int(np.argmax(digits.images.max(axis=(1, 2)) == 16))  # an image with a full-strength pixel
    with Image.open(digits_dir / str(digits.target[row]) / f"digit-{row:04d}.png") as image:
        assert (image.mode, image.size) == ("L", (8, 8))
        pixels = np.asarray(image)
    assert pixels.max() == 255  # 16 is white
    assert np.array_equal(pixels, np.rint(digits.images[row] * 255 / 16))
    assert np.array_equal(np.rint(pixels.astype(float) * 16 / 255), digits.images[row])  # the original values come back


def test_two_writes_give_identical_bytes_and_counts(digits_dir, tmp_path):
    again = tmp_path / "again"
    counts = write_digits(again)
    assert counts == {str(d): int((load_digits().target == d).sum()) for d in range(10)}
    first = _all_bytes(digits_dir)
    assert _all_bytes(again) == first
    assert not any(b"tIME" in data or b"tEXt" in data for data in first.values())  # no clock in the files
    mtime = (again / "0" / "digit-0000.png").stat().st_mtime_ns
    write_digits(again)  # a re-run leaves unchanged files alone
    assert (again / "0" / "digit-0000.png").stat().st_mtime_ns == mtime
    assert _all_bytes(again) == first


def test_directory_hash_is_the_known_one(digits_dir):
    assert dataset_fingerprint(digits_dir) == DIGITS_DIR_MD5
