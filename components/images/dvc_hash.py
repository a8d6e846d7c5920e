"""The version of an image folder: DVC's directory hash, read from its ``.dvc`` file.

After ``dvc add data/digits``, ``data/digits.dvc`` records the folder's hash as
``outs[0].md5``, ending in ``.dir`` (DVC 3). That value is the dataset md5 of the
image pipeline's lineage, as a file's md5 is for tables. It is read, never
recomputed: DVC is the authority on what it tracks. (``components.fingerprint``
computes the same hash without the ``.dir`` suffix from the files themselves.)
"""

from __future__ import annotations

from pathlib import Path

import yaml

from components.data.dataset import DataNotFoundError

DIR_SUFFIX = ".dir"


def _how_to_track(dvc_file: Path) -> str:
    folder = dvc_file.with_suffix("").as_posix()
    return f"run `dvc add {folder}` (after ingest) to track the folder"


def dataset_dir_md5(root: str | Path, dvc_file: str | Path) -> str:
    """The ``md5`` (``<hex>.dir``) of the directory tracked by ``dvc_file`` (relative to ``root``).

    Raises ``DataNotFoundError`` when the ``.dvc`` file is missing, and ``ValueError`` when it
    does not track a directory or holds no hash; both messages name the file and what to run.
    """
    rel = Path(dvc_file)
    path = Path(root) / rel
    if not path.is_file():
        raise DataNotFoundError(f"{rel.as_posix()} not found: the image folder is not tracked; {_how_to_track(rel)}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ValueError(f"{rel.as_posix()}: not valid YAML ({err}); {_how_to_track(rel)} again") from None
    outs = data.get("outs") if isinstance(data, dict) else None
    first = outs[0] if isinstance(outs, list) and outs and isinstance(outs[0], dict) else {}
    md5 = first.get("md5")
    if not isinstance(md5, str) or not md5:
        raise ValueError(f"{rel.as_posix()}: outs[0].md5 is missing; {_how_to_track(rel)} again")
    if not md5.endswith(DIR_SUFFIX):
        raise ValueError(
            f"{rel.as_posix()}: outs[0].md5 {md5!r} is a file's hash, not a folder's (no {DIR_SUFFIX!r}); "
            "image data is tracked as one folder of label folders"
        )
    return md5
