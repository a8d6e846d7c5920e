"""Ingest of scikit-learn's bundled 8x8 digits as a folder of PNGs, one folder per label.

``write_digits`` writes ``<out_dir>/<label>/digit-<row>.png``. The bytes depend only on
the pixels, so DVC's directory hash of ``out_dir`` is the same on every machine and on
every re-run: that hash is the dataset version (see ``dvc_hash``).
"""

from __future__ import annotations

import io
import logging
import sys
from collections import Counter
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# The dataset's pixels are integers 0..16 (counts of set bits in 4x4 blocks of the 32x32 scans).
DIGITS_MAX = 16
# Row ids padded to 4 digits: the dataset has 1,797 rows, and padded names sort in row order.
ID_WIDTH = 4


def digit_file_name(row: int) -> str:
    """The stable file name of the dataset's row ``row``: its id never depends on the label or order of writing."""
    return f"digit-{row:0{ID_WIDTH}d}.png"


def to_grayscale_bytes(values: np.ndarray) -> np.ndarray:
    """Digits pixels 0..16 as 8-bit gray 0..255.

    Scaled by 255/16 and rounded so that 16 is white: an 8-bit PNG viewer, a browser or a model
    that expects 0..255 input sees the whole contrast range. Rounding keeps it lossless, since
    ``round(p * 16 / 255)`` gives the original integer back (the steps are ~16 apart).
    """
    scaled = np.rint(np.asarray(values, dtype=np.float64) * (255.0 / DIGITS_MAX))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def png_bytes(pixels: np.ndarray) -> bytes:
    """One grayscale image (mode "L") as PNG bytes that depend on the pixels only."""
    from PIL import Image

    buffer = io.BytesIO()
    # No pnginfo: Pillow then writes no tIME or text chunks, so nothing varies with the clock.
    # compress_level 0 stores the pixels uncompressed in the zlib stream: its bytes follow from
    # the format alone, not from the zlib build a Pillow wheel ships (zlib and zlib-ng match
    # differently at higher levels). An 8x8 image loses nothing by it.
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG", compress_level=0, optimize=False)
    return buffer.getvalue()


def _write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` unless the file already holds it; untouched files keep DVC's cached state valid."""
    if path.is_file() and path.read_bytes() == data:
        return False
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return True


def write_digits(out_dir: Path) -> dict[str, int]:
    """Write the bundled digits as ``<out_dir>/<label>/digit-NNNN.png``; return the count per label.

    Files already holding the right bytes are left alone. Files under ``out_dir`` that are not part
    of the dataset are not deleted (the folder may be a user's); they are logged, since they change
    the DVC hash and the contract will see them.
    """
    from sklearn.datasets import load_digits

    out_dir = Path(out_dir)
    digits = load_digits()
    pixels = to_grayscale_bytes(digits.images)
    counts: Counter[str] = Counter()
    expected, written = set(), 0
    for row, (image, target) in enumerate(zip(pixels, digits.target, strict=True)):
        label = str(int(target))
        path = out_dir / label / digit_file_name(row)
        path.parent.mkdir(parents=True, exist_ok=True)
        written += _write_if_changed(path, png_bytes(image))
        expected.add(path.relative_to(out_dir).as_posix())
        counts[label] += 1
    extra = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file())
    extra = [p for p in extra if p not in expected]
    if extra:
        log.warning("ingest: %d files in %s are not digits (e.g. %s)", len(extra), out_dir, ", ".join(extra[:5]))
    log.info("ingest: %d digits in %s (%d files written)", len(pixels), out_dir, written)
    return dict(sorted(counts.items(), key=lambda kv: int(kv[0])))


IMAGE_SOURCES = ("sklearn:digits",)


def track_with_dvc(folder: Path) -> str:
    """``dvc add`` the folder (DVC writes ``<folder>.dvc`` beside it); returns DVC's directory hash.

    A real DVC command: the hash it records is the one lineage reads back (``dvc_hash``). Outside a
    DVC repository, or without the ``dvc`` command, the error says what to run.
    """
    import shutil
    import subprocess

    from components.images.dvc_hash import dataset_dir_md5
    from components.settings_base import ConfigError

    dvc = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
    if not Path(dvc).exists():
        raise ConfigError(f"wrote {folder}, but no `dvc` command: install it, then `dvc add {folder}`")
    done = subprocess.run([dvc, "add", "--quiet", folder.name], cwd=folder.parent, capture_output=True, text=True)
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()
        raise ConfigError(f"wrote {folder}, but `dvc add {folder.name}` (in {folder.parent}) failed: "
                           f"{why[-1] if why else 'no output'}; a DVC repository is needed (`dvc init`)")  # fmt: skip
    return dataset_dir_md5(folder.parent, f"{folder.name}.dvc")
