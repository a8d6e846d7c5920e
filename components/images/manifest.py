"""A folder of images as a table: one row per file, what the image contract checks.

``scan_images`` walks ``<root>/<label>/...`` and records, per file, its path
relative to ``root``, its label (the first folder under ``root``; "" for a file
lying in ``root`` itself), size, sha256 of the bytes, and what Pillow makes of it:
width, height, mode, whether it decodes, and if not, why. A corrupt file is a row
with ``readable`` False, never an exception: the contract decides what it costs.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path

import pandas as pd

# Columns in order, and their dtypes: nullable ints and strings, since unreadable files have no size or mode.
MANIFEST_DTYPES = {
    "path": "string",
    "label": "string",
    "size_bytes": "int64",
    "sha256": "string",
    "width": "Int64",
    "height": "Int64",
    "mode": "string",
    "readable": "bool",
    "error": "string",
}


def _why_unreadable(err: Exception) -> str:
    """A short reason for the report: the kind of failure first, Pillow's own words after it."""
    from PIL import Image, UnidentifiedImageError

    text = " ".join(str(err).split())[:200]
    if isinstance(err, UnidentifiedImageError):
        return "not an image: Pillow recognises no image format in the bytes"
    if isinstance(err, Image.DecompressionBombError):
        return f"too large: {text}"
    if "truncated" in text.lower() or isinstance(err, EOFError):
        return f"truncated: {text or type(err).__name__}"
    return f"corrupt: {type(err).__name__}: {text}" if text else f"corrupt: {type(err).__name__}"


def inspect_image(data: bytes) -> dict:
    """Width, height, mode, readable and error of one file's bytes; never raises on bad bytes.

    ``verify`` checks the container (PNG chunk CRCs and the like) without decoding; ``load``
    then decodes every pixel, which is what finds a file cut short. Pillow needs a fresh
    image after ``verify``, hence the second open.
    """
    from PIL import Image

    info = {"width": None, "height": None, "mode": None, "readable": False, "error": None}
    if not data:
        return info | {"error": "empty file"}
    try:
        with warnings.catch_warnings():
            # A large image is a finding for the contract, not a warning on the console.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                info |= {"width": image.width, "height": image.height, "mode": image.mode}
                image.verify()
            with Image.open(io.BytesIO(data)) as image:
                image.load()
    except Image.DecompressionBombWarning as err:
        info["error"] = f"too large: {err}"
    except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError, ... for broken files
        info["error"] = _why_unreadable(err)
    else:
        info["readable"] = True
    return info


def _files(root: Path) -> list[Path]:
    """Files under ``root`` in path order; hidden files and folders (``.DS_Store``, ``.git``) are skipped."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / name for name in filenames if not name.startswith(".")]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def scan_images(root: str | Path) -> pd.DataFrame:
    """The manifest of ``root``: one row per file (columns ``MANIFEST_DTYPES``), sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} not found: run ingest first, or `dvc pull` the tracked version")
    rows = []
    for file in _files(root):
        rel = file.relative_to(root)
        data = file.read_bytes()
        rows.append(
            {
                "path": rel.as_posix(),
                "label": rel.parts[0] if len(rel.parts) > 1 else "",
                "size_bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                **inspect_image(data),
            }
        )
    frame = pd.DataFrame(rows, columns=list(MANIFEST_DTYPES))
    return frame.astype(MANIFEST_DTYPES)
