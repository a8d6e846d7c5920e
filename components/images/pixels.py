"""Images as model input: a float32 array ``(n, channels, height, width)`` with values in [0, 1].

``load_pixels`` takes files (paths, relative to a root or not), encoded bytes (PNG, JPEG, anything
Pillow reads) or arrays, and applies one image spec, the contract's policy on size and mode:

- the mode must be the spec's (a model trained on gray images has one input channel; guessing how
  to turn colour into gray would predict on something the contract never let into training);
- ``resize: none``: the size must be exactly ``width`` x ``height``; ``fit``: any size is resized to
  it with ``RESIZE_FILTER`` (aspect ratio not kept, as the contract states).

Every failure is an ``ImageDecodeError`` naming the image (its path, or its index in the batch) and
the problem, in the manifest's words (not an image, truncated, corrupt, too large). Training, the
pyfunc and the service all read images here, so one image gives the same pixels whichever way it came.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from components.images.manifest import _why_unreadable

# Channels per supported mode. Other Pillow modes (palette, 16-bit, CMYK...) have no obvious [0, 1] scale.
CHANNELS = {"L": 1, "RGB": 3}
# Box (area averaging): each output pixel is the mean of the input pixels it covers. It is how the
# digits themselves were made (set bits counted in 4x4 blocks of 32x32 scans), never overshoots [0, 1],
# and halving 2x2 blocks gives the original image back exactly. Enlarging acts as nearest neighbour.
RESIZE_FILTER = "box"
# A decompression-bomb guard checked from the header, before any pixel is decoded: 4 megapixels is far
# beyond any digit, and decoding it costs at most a few MB. Pillow's own limit (~89 MP) is much looser.
DEFAULT_MAX_PIXELS = 4_000_000


class ImageDecodeError(ValueError):
    """An image could not become model input; ``where`` names it, ``problem`` says why."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where, self.problem = where, problem


@dataclass(frozen=True)
class ImageSpec:
    """What a model's input images are: the contract's image section, and all a model keeps of it."""

    width: int
    height: int
    mode: str = "L"
    resize: str = "none"

    def __post_init__(self) -> None:
        if self.mode not in CHANNELS:
            raise ValueError(f"image mode {self.mode!r}: models read modes {', '.join(CHANNELS)} only")
        if self.resize not in ("none", "fit"):
            raise ValueError(f"resize {self.resize!r} is not none or fit")
        if min(self.width, self.height) < 1:
            raise ValueError(f"image size {self.width}x{self.height} must be positive")

    @classmethod
    def from_contract(cls, contract: Any) -> ImageSpec:
        """The spec of an ``ImageContract`` (duck-typed: this module ships in a model, the contract does not)."""
        return cls(contract.width, contract.height, contract.mode, contract.resize)

    @property
    def channels(self) -> int:
        return CHANNELS[self.mode]

    @property
    def shape(self) -> tuple[int, int, int]:
        """One image's shape in model input: (channels, height, width)."""
        return (self.channels, self.height, self.width)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fit_size(pixels: np.ndarray, spec: ImageSpec, where: str) -> np.ndarray:
    """``(C, h, w)`` floats at the spec's size: unchanged, resized (fit) or refused (none)."""
    h, w = pixels.shape[1:]
    if (w, h) == (spec.width, spec.height):
        return pixels
    if spec.resize == "none":
        raise ImageDecodeError(where, f"wrong size: {w}x{h}, expected {spec.width}x{spec.height} (resize: none)")
    from PIL import Image

    # Mode "F" (32-bit float) per channel: resizing the [0, 1] values directly, with no rounding to 8 bits.
    resample = Image.Resampling[RESIZE_FILTER.upper()]
    planes = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(p, dtype=np.float32)).resize((spec.width, spec.height), resample)
        )
        for p in pixels
    ]
    return np.clip(np.stack(planes), 0.0, 1.0)


def _check_pixel_count(width: int, height: int, max_pixels: int, where: str) -> None:
    if width * height > max_pixels:
        raise ImageDecodeError(where, f"too many pixels: {width}x{height} is over the limit of {max_pixels:,}")


def decode_image(data: bytes, spec: ImageSpec, *, where: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """One encoded image as ``(C, H, W)`` float32 in [0, 1]; any failure is an ImageDecodeError naming ``where``."""
    from PIL import Image

    if not data:
        raise ImageDecodeError(where, "empty: no bytes")
    try:
        with warnings.catch_warnings():
            # Pillow warns, then raises, on huge images; either way it is our "too many pixels".
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:  # reads the header only
                _check_pixel_count(image.width, image.height, max_pixels, where)
                if image.mode != spec.mode:
                    raise ImageDecodeError(where, f"wrong mode: {image.mode}, expected {spec.mode}")
                image.load()  # decodes every pixel: this is what finds a file cut short
                values = np.asarray(image, dtype=np.float32) / np.float32(255.0)
    except ImageDecodeError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
        raise ImageDecodeError(where, f"too many pixels: {err}") from None
    except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError, ... for broken bytes
        raise ImageDecodeError(where, _why_unreadable(err)) from None
    planes = values[np.newaxis] if values.ndim == 2 else np.moveaxis(values, -1, 0)
    return _fit_size(planes, spec, where).astype(np.float32, copy=False)


def _scaled(values: np.ndarray, where: str) -> np.ndarray:
    """An array as floats in [0, 1]: integers are 8-bit levels 0..255, floats must already be in [0, 1]."""
    if values.dtype == bool or not (
        np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)
    ):
        raise ImageDecodeError(where, f"not pixels: dtype {values.dtype}; expected uint8 levels or floats in [0, 1]")
    if values.size == 0:
        raise ImageDecodeError(where, "empty: no pixels")
    low, high = float(values.min()), float(values.max())
    if np.issubdtype(values.dtype, np.integer):
        if low < 0 or high > 255:
            raise ImageDecodeError(where, f"pixel levels {low:g}..{high:g} are outside 0..255")
        return values.astype(np.float32) / np.float32(255.0)
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high > 1:
        # e.g. the raw sklearn digits (0..16): scaling them silently would predict on the wrong image.
        raise ImageDecodeError(where, f"float pixels {low:g}..{high:g} are outside [0, 1]")
    return values.astype(np.float32, copy=False)


def _array_image(values: np.ndarray, spec: ImageSpec, where: str, max_pixels: int) -> np.ndarray:
    """One image given as an array: ``(H, W)`` for one channel, or ``(C, H, W)``."""
    if values.ndim == 2:
        values = values[np.newaxis]
    if values.ndim != 3 or values.shape[0] != spec.channels:
        raise ImageDecodeError(where, f"array of shape {values.shape}: expected (H, W) or ({spec.channels}, H, W)")
    _check_pixel_count(values.shape[2], values.shape[1], max_pixels, where)
    return _fit_size(_scaled(values, where), spec, where).astype(np.float32, copy=False)


def _read_file(path: Path, where: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise ImageDecodeError(where, f"cannot read the file: {err.strerror or err}") from None


def _one(item: Any, index: int, spec: ImageSpec, root: Path | None, max_pixels: int) -> np.ndarray:
    if isinstance(item, bytes | bytearray | memoryview):
        return decode_image(bytes(item), spec, where=f"image {index}", max_pixels=max_pixels)
    if isinstance(item, str | Path):
        path = Path(item) if root is None else Path(root) / item
        where = f"file {Path(item).as_posix()}"
        return decode_image(_read_file(path, where), spec, where=where, max_pixels=max_pixels)
    if isinstance(item, np.ndarray):
        return _array_image(item, spec, f"image {index}", max_pixels)
    raise ImageDecodeError(
        f"image {index}", f"not an image: got {type(item).__name__}; expected a path, bytes or array"
    )


def load_pixels(
    images: Any, spec: ImageSpec, *, root: str | Path | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Images as model input ``(n, C, H, W)`` float32 in [0, 1], by the spec's size and mode policy.

    ``images`` is one image (a path, bytes) or a sequence of paths, bytes or per-image arrays, or one
    array: ``(n, H, W)`` or ``(n, C, H, W)`` (uint8 levels or floats in [0, 1]; a 2-d array is one
    image). Paths are read under ``root`` when given, and errors name them as given.
    """
    root = None if root is None else Path(root)
    if isinstance(images, np.ndarray):
        batch = images[np.newaxis] if images.ndim == 2 else images
        if batch.ndim == 3 and spec.channels == 1:
            batch = batch[:, np.newaxis]
        if batch.ndim != 4:
            raise ImageDecodeError("images", f"array of shape {images.shape}: expected (n, H, W) or (n, C, H, W)")
        if batch.shape[1:] == spec.shape and spec.height * spec.width <= max_pixels:
            try:
                return _scaled(batch, "images")  # the common case: the whole batch at once
            except ImageDecodeError:
                pass  # image by image below, so the error names the first bad one
        items: Sequence[Any] = list(batch)
    elif isinstance(images, str | Path | bytes | bytearray | memoryview):
        items = [images]
    else:
        items = list(images)
    if not items:
        return np.zeros((0, *spec.shape), dtype=np.float32)
    return np.stack([_one(item, i, spec, root, max_pixels) for i, item in enumerate(items)])
