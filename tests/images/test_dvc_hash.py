"""The dataset md5 of an image folder is DVC's directory hash, read from the .dvc file after a real `dvc add`."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components.data.dataset import DataNotFoundError
from components.fingerprint import dataset_fingerprint
from components.images.dvc_hash import dataset_dir_md5

BIN = Path(sys.executable).parent
ENV = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="true")


def dvc(cwd: Path, *args: str) -> str:
    proc = subprocess.run([str(BIN / "dvc"), *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"dvc {' '.join(args)}: {proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc.stdout


def test_md5_is_what_dvc_add_recorded(digits_dir, tmp_path):
    shutil.copytree(digits_dir, tmp_path / "data" / "digits")
    dvc(tmp_path, "init", "--no-scm", "-q")
    dvc(tmp_path, "add", "-q", "data/digits")
    md5 = dataset_dir_md5(tmp_path, "data/digits.dvc")
    assert md5.endswith(".dir")
    # DVC's cache holds the folder's listing under that very hash, one entry per image.
    listing = tmp_path / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    assert len(json.loads(listing.read_text())) == 1797
    # ... and the pipeline's own fingerprint of the folder agrees, so lineage and DVC match.
    assert md5 == dataset_fingerprint(tmp_path / "data" / "digits") + ".dir"
    assert "up to date" in dvc(tmp_path, "status", "data/digits.dvc").lower()


def test_untracked_folder_names_the_file_and_the_command(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"data/digits\.dvc.*`dvc add data/digits`"):
        dataset_dir_md5(tmp_path, "data/digits.dvc")


def test_a_tracked_file_is_not_an_image_folder(tmp_path):
    (tmp_path / "data.dvc").write_text("outs:\n- md5: 0123456789abcdef0123456789abcdef\n  path: data\n")
    with pytest.raises(ValueError, match=r"data\.dvc: outs\[0\]\.md5 .* is a file's hash"):
        dataset_dir_md5(tmp_path, "data.dvc")
    (tmp_path / "empty.dvc").write_text("outs: []\n")
    with pytest.raises(ValueError, match=r"empty\.dvc: outs\[0\]\.md5 is missing; run `dvc add empty`"):
        dataset_dir_md5(tmp_path, "empty.dvc")
