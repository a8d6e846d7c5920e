"""Images to model input: paths, bytes and arrays give the same pixels; every failure names the image and why."""

import io

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from components.images.ingest import png_bytes, to_grayscale_bytes
from components.images.pixels import ImageDecodeError, ImageSpec, load_pixels
from tests.images.conftest import digits_contract

SPEC = ImageSpec(width=8, height=8, mode="L")
FIT = ImageSpec(width=8, height=8, mode="L", resize="fit")


@pytest.fixture(scope="module")
def levels() -> np.ndarray:
    """The first 20 digits as 8-bit gray levels, as ingest writes them."""
    return to_grayscale_bytes(load_digits().images[:20])


def test_paths_bytes_and_arrays_give_the_same_pixels(digits_dir, levels):
    paths = [f"{d}/digit-{row:04d}.png" for row, d in [(0, 0), (1, 1), (2, 2)]]
    from_paths = load_pixels(paths, SPEC, root=digits_dir)
    assert from_paths.shape == (3, 1, 8, 8) and from_paths.dtype == np.float32
    np.testing.assert_array_equal(from_paths[:, 0], levels[:3] / np.float32(255))
    from_bytes = load_pixels([png_bytes(image) for image in levels[:3]], SPEC)
    np.testing.assert_array_equal(from_bytes, from_paths)
    np.testing.assert_array_equal(load_pixels(levels[:3], SPEC), from_paths)  # uint8 (n, H, W)
    np.testing.assert_array_equal(load_pixels(levels[:3, None] / 255.0, SPEC), from_paths)  # floats (n, C, H, W)
    np.testing.assert_array_equal(load_pixels(list(levels[:3]), SPEC), from_paths)  # one array per image
    np.testing.assert_array_equal(load_pixels(levels[0], SPEC), from_paths[:1])  # a 2-d array is one image
    np.testing.assert_array_equal(load_pixels(png_bytes(levels[0]), SPEC), from_paths[:1])  # bytes alone: one image
    assert load_pixels([], SPEC).shape == (0, 1, 8, 8)


def test_jpeg_bytes_decode_close_to_the_png(levels):
    buffer = io.BytesIO()
    Image.fromarray(levels[5]).save(buffer, format="JPEG", quality=95)
    pixels = load_pixels(buffer.getvalue(), SPEC)
    assert pixels.shape == (1, 1, 8, 8)
    assert np.abs(pixels[0, 0] - levels[5] / 255.0).mean() < 0.05  # lossy, but the same digit


def test_values_stay_in_unit_range_and_float_arrays_outside_it_are_refused(levels):
    pixels = load_pixels(levels, SPEC)
    assert pixels.min() >= 0 and pixels.max() <= 1
    raw = load_digits().images[:4].copy()  # 0..16: the classic mistake of feeding the raw dataset
    with pytest.raises(ImageDecodeError, match=r"^image 0: float pixels 0\.\.15 are outside \[0, 1\]"):
        load_pixels(raw, SPEC)
    bad = levels[:4] / 255.0
    bad[2, 0, 0] = 1.5
    with pytest.raises(ImageDecodeError, match="^image 2: "):  # the batch error names the first bad image
        load_pixels(bad, SPEC)
    with pytest.raises(ImageDecodeError, match="outside 0..255"):
        load_pixels(np.full((1, 8, 8), 300, dtype=np.int64), SPEC)


def test_decode_errors_name_the_file_and_the_problem(spoiled):
    cases = {
        "3/truncated.png": "truncated",
        "5/notes.png": "not an image",
        "4/big.png": "wrong size: 16x16, expected 8x8 (resize: none)",
        "7/colour.png": "wrong mode: RGB, expected L",
        "3/missing.png": "cannot read the file",
    }
    for path, problem in cases.items():
        with pytest.raises(ImageDecodeError) as caught:
            load_pixels(["0/digit-0000.png", path], SPEC, root=spoiled)
        assert str(caught.value).startswith(f"file {path}: ") and problem in caught.value.problem
        assert caught.value.where == f"file {path}"


def test_bytes_errors_name_the_index(levels):
    good = png_bytes(levels[0])
    with pytest.raises(ImageDecodeError, match="^image 1: not an image"):
        load_pixels([good, b"GIF? no, just text"], SPEC)
    with pytest.raises(ImageDecodeError, match="^image 2: truncated"):
        load_pixels([good, good, good[: len(good) // 2]], SPEC)
    with pytest.raises(ImageDecodeError, match="^image 0: empty"):
        load_pixels([b""], SPEC)
    with pytest.raises(ImageDecodeError, match="^image 1: not an image: got int"):
        load_pixels([good, 7], SPEC)


def test_too_many_pixels_is_refused_before_decoding():
    buffer = io.BytesIO()
    Image.new("L", (300, 200)).save(buffer, format="PNG")
    with pytest.raises(ImageDecodeError, match=r"^image 0: too many pixels: 300x200 is over the limit of 10,000"):
        load_pixels([buffer.getvalue()], FIT, max_pixels=10_000)
    with pytest.raises(ImageDecodeError, match="too many pixels"):
        load_pixels(np.zeros((1, 200, 300), dtype=np.uint8), FIT, max_pixels=10_000)
    assert load_pixels([buffer.getvalue()], FIT, max_pixels=60_000).shape == (1, 1, 8, 8)


def test_resize_fit_reads_any_size_at_the_contract_size(levels):
    doubled = np.kron(levels[3], np.ones((2, 2), dtype=np.uint8))  # 16x16, each pixel a 2x2 block
    from_bytes = load_pixels(png_bytes(doubled), FIT)
    from_array = load_pixels(doubled[None], FIT)
    assert from_bytes.shape == from_array.shape == (1, 1, 8, 8)
    np.testing.assert_allclose(from_bytes[0, 0], levels[3] / 255.0, atol=1e-6)  # halving 2x2 blocks is exact
    np.testing.assert_allclose(from_array, from_bytes, atol=1e-6)
    with pytest.raises(ImageDecodeError, match="wrong size: 16x16"):
        load_pixels(doubled[None], SPEC)
    small = load_pixels(levels[3][::2, ::2].copy()[None], FIT)  # upsampled: 4x4 -> 8x8
    assert small.shape == (1, 1, 8, 8) and small.min() >= 0 and small.max() <= 1


def test_spec_follows_the_contract_and_rgb_has_three_channels():
    assert ImageSpec.from_contract(digits_contract(resize="fit")) == FIT
    rgb = ImageSpec(width=4, height=2, mode="RGB")
    buffer = io.BytesIO()
    Image.new("RGB", (4, 2), color=(255, 0, 51)).save(buffer, format="PNG")
    pixels = load_pixels(buffer.getvalue(), rgb)
    assert pixels.shape == (1, 3, 2, 4)
    np.testing.assert_allclose(pixels[0, :, 0, 0], [1.0, 0.0, 0.2])
    with pytest.raises(ValueError, match="models read modes L, RGB only"):
        ImageSpec(width=8, height=8, mode="P")
