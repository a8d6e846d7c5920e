"""Splitting images into train, val and test by content, and the leakage check.

Two files with the same bytes are one image. ``split_images`` keeps every such
group in one split (seeded, stratified by label), so our own split never leaks;
``split_leakage`` checks any split, ours or one that came with the data, and
names the files of each image found in two splits. Splits are lists of manifest
paths: small, JSON-serialisable, and what a DVC stage can write as its output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from components.validation.report import RuleResult, jsonable

SPLITS = ("train", "val", "test")


def _groups(manifest: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct content hash: its label stratum and its paths (sorted).

    A group whose copies carry different labels is stratified by its most frequent label (ties: the
    first in sort order); it stays whole either way, which is what keeps the split free of leaks.
    """
    rows = manifest[["path", "label", "sha256"]].astype("str").sort_values("path")
    votes = rows.groupby(["sha256", "label"]).size().rename("n").reset_index()
    votes = votes.sort_values(["sha256", "n", "label"], ascending=[True, False, True])
    stratum = votes.drop_duplicates("sha256").set_index("sha256")["label"]
    paths = rows.groupby("sha256")["path"].agg(list)
    return pd.DataFrame({"stratum": stratum, "paths": paths}).sort_index()


def _take(sizes: np.ndarray, order: np.ndarray, target: int) -> np.ndarray:
    """Positions (from ``order``) of the groups that fill ``target`` images, taken in order."""
    if target <= 0 or len(order) == 0:
        return order[:0]
    filled = np.cumsum(sizes[order])
    # Stop at the group whose images first reach the target (never overshooting by more than one group).
    return order[: int(np.searchsorted(filled, target)) + 1]


def split_images(manifest: pd.DataFrame, *, test_size: float, val_size: float, seed: int) -> dict[str, list[str]]:
    """Seeded stratified train/val/test split of the manifest's files; identical files stay together.

    ``val_size`` is a share of what remains after test, as in the tabular split. Per label, the
    groups of identical files are shuffled with ``seed`` and taken in that order until test, then
    val, hold their share of the label's images. Pass the files that passed validation (the
    ``kept`` manifest): quarantined files belong to no split.
    """
    if not (0 < test_size < 1 and 0 < val_size < 1):
        raise ValueError(f"test_size and val_size must be between 0 and 1, got {test_size} and {val_size}")
    groups = _groups(manifest)
    rng = np.random.default_rng(seed)
    assigned: dict[str, list[str]] = {name: [] for name in SPLITS}
    for _, part in groups.groupby("stratum", sort=True):
        sizes = part["paths"].map(len).to_numpy()
        order = rng.permutation(len(part))
        n_images = int(sizes.sum())
        test = _take(sizes, order, round(test_size * n_images))
        rest = order[len(test) :]
        val = _take(sizes, rest, round(val_size * int(sizes[rest].sum())))
        chosen = {"test": test, "val": val, "train": rest[len(val) :]}
        for name, positions in chosen.items():
            for paths in part["paths"].to_numpy()[positions]:
                assigned[name] += paths
    return {name: sorted(paths) for name, paths in assigned.items()}


def split_leakage(manifest: pd.DataFrame, splits: Mapping[str, Sequence[str]], severity: str = "block") -> RuleResult:
    """Rule ``duplicates_across_splits``: no image (by content hash) in two splits.

    ``splits`` maps a split's name to manifest paths. The result fails with ``severity`` when an
    image is in more than one split; its examples name every file of each such image, as
    ``"<split>: <path>"``, one list per image.
    """
    owner = pd.DataFrame(
        [(name, path) for name, paths in splits.items() for path in paths], columns=["split", "path"], dtype="str"
    )
    hashes = manifest[["path", "sha256"]].astype("str")
    joined = owner.merge(hashes, on="path", how="left")
    unknown = joined.loc[joined["sha256"].isna(), "path"].tolist()
    if unknown:
        raise ValueError(f"split files not in the manifest: {', '.join(unknown[:5])}")
    n_splits = joined.groupby("sha256")["split"].nunique()
    leaked = joined[joined["sha256"].isin(n_splits[n_splits > 1].index)].sort_values(["sha256", "split", "path"])
    examples = [[f"{s}: {p}" for s, p in zip(g["split"], g["path"], strict=True)] for _, g in leaked.groupby("sha256")]
    n_images = len(examples)
    return RuleResult(
        rule="duplicates_across_splits",
        column="sha256",
        expectation="pandas.duplicates_across_splits",
        severity=severity,
        success=n_images == 0,
        observed=f"{n_images} image(s) in more than one of {', '.join(splits)}",
        unexpected_count=len(leaked),
        unexpected_percent=100.0 * len(leaked) / max(len(joined), 1),
        examples=jsonable(examples),
        expected={"splits per image": 1},
    )
