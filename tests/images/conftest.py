"""Shared by the image tests: the bundled digits written once as PNG folders, and ways to spoil a copy."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from components.images.contract import ImageContract
from components.images.ingest import write_digits
from components.images.manifest import scan_images

LABELS = tuple(str(d) for d in range(10))


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory) -> Path:
    """The digits as written by ingest; never modified (copy it with ``spoiled`` to change files)."""
    root = tmp_path_factory.mktemp("digits") / "digits"
    write_digits(root)
    return root


@pytest.fixture(scope="session")
def digits_manifest(digits_dir):
    return scan_images(digits_dir)


@pytest.fixture
def spoiled(digits_dir, tmp_path) -> Path:
    """A copy of the digits with broken and odd files added (named in the tests):

    a truncated PNG, a text file named .png, a 16x16 image, an RGB image, a file in an unknown
    label folder, and a hidden file that the scan skips.
    """
    root = tmp_path / "digits"
    shutil.copytree(digits_dir, root)
    png = (root / "3" / "digit-0003.png").read_bytes()
    (root / "3" / "truncated.png").write_bytes(png[: len(png) // 2])
    (root / "5" / "notes.png").write_text("not an image, only a name that says so\n", encoding="utf-8")
    Image.new("L", (16, 16), color=200).save(root / "4" / "big.png")
    Image.new("RGB", (8, 8), color=(10, 20, 30)).save(root / "7" / "colour.png")
    (root / "x").mkdir()
    Image.new("L", (8, 8)).save(root / "x" / "stray.png")
    (root / "2" / ".DS_Store").write_bytes(b"\0\1\2")
    return root


def digits_contract(**changes) -> ImageContract:
    """The contract of pipelines/digits/contract.yaml, with ``changes``."""
    base = {
        "name": "digits-classifier",
        "width": 8,
        "height": 8,
        "mode": "L",
        "labels": LABELS,
        "min_per_class": 50,
        "max_class_ratio": 2.0,
        "severity": {"unknown_label": "block"},
    }
    return ImageContract(**(base | changes))


@pytest.fixture(scope="module")
def digits():
    """train / val / test pixels (n, 1, 8, 8) in [0, 1] and text labels, from sklearn's bundled digits."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    X, y = (data.images / 16.0).astype(np.float32)[:, None], data.target.astype(str)
    X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    X_train, X_val, y_train, y_val = train_test_split(X_rest, y_rest, test_size=0.2, random_state=0, stratify=y_rest)
    return {"train": (X_train, y_train), "val": (X_val, y_val), "test": (X_test, y_test)}


@pytest.fixture(scope="module")
def cnn(digits):
    """The CNN trained with augmentation (as the digits contract's translation test needs), seed 0."""
    from components.images.image_model import TORCH_CNN, train_image_candidate

    (X, y), (X_val, y_val) = digits["train"], digits["val"]
    return train_image_candidate("cnn", TORCH_CNN, {"augment": True}, X, y, X_val, y_val, seed=0)
