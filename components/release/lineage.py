"""Where a model came from: git commit, params hash, dataset md5, as registry tags."""

from __future__ import annotations

import subprocess
from pathlib import Path

from components import vocabulary as v


def git_commit(root: str | Path) -> str:
    """HEAD's commit, suffixed ``-dirty`` if tracked files changed; ``uncommitted`` outside git."""

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)

    head = git("rev-parse", "HEAD")
    if head.returncode != 0:
        return "uncommitted"
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    return head.stdout.strip() + ("-dirty" if dirty else "")


def lineage_tags(
    *,
    dataset_md5: str,
    dataset_path: str,
    git: str,
    params_hash: str,
    candidate: str,
    family: str,
    task: str | None = None,
) -> dict[str, str]:
    """The tags saying where a version came from; ``task`` (binary, multiclass, regression) when known."""
    tags = {
        v.TAG_DATASET_MD5: dataset_md5,
        v.TAG_DATASET_PATH: dataset_path,
        v.TAG_GIT_COMMIT: git,
        v.TAG_PARAMS_HASH: params_hash,
        v.TAG_CANDIDATE: candidate,
        v.TAG_FAMILY: family,
    }
    return tags if task is None else {**tags, v.TAG_TASK: task}
