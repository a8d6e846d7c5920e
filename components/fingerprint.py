"""Content hashes that decide whether a step's inputs changed.

The same hashes serve Prefect (skip a run, cache keys) and DVC parity: the hash
of a file is its md5, and the hash of a directory is computed exactly as DVC 3
computes a ``.dir`` md5 (without the ``.dir`` suffix), so
``dataset_fingerprint("data")`` equals the md5 recorded in ``data.dvc``.
``Inputs`` and ``decide`` turn them into the retraining decision (pure: tags in, reason out).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

_MISSING = object()
# Model-version tags of the retraining decision. The training flow writes its own ``fingerprint``
# (over all params); these hash only the params training reads, so a serve-only change is no reason.
TAG_FINGERPRINT = "retraining.fingerprint"
TAG_PARAMS = "retraining.params_hash"
TAG_CODE = "retraining.code_hash"


def file_md5(path: str | Path) -> str:
    """md5 of a file's bytes (what DVC 3 records for a file)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "md5").hexdigest()


def _dir_entries(path: Path) -> list[dict[str, str]]:
    """``[{"md5", "relpath"}]`` for every file under ``path``, sorted by relpath (DVC's order)."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = [d for d in dirnames if d not in (".git", ".dvc")]
        for name in filenames:
            full = Path(dirpath) / name
            entries.append({"md5": file_md5(full), "relpath": full.relative_to(path).as_posix()})
    return sorted(entries, key=lambda e: e["relpath"])


def dataset_fingerprint(path: str | Path) -> str:
    """md5 of a file, or of a directory's sorted (relpath, md5) listing as DVC hashes it."""
    path = Path(path)
    if path.is_file():
        return file_md5(path)
    if path.is_dir():
        blob = json.dumps(_dir_entries(path), sort_keys=True).encode("utf-8")
        return hashlib.md5(blob).hexdigest()
    raise FileNotFoundError(f"cannot fingerprint {path}: no such file or directory")


def _lookup(params: dict[str, Any], dotted: str) -> Any:
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def params_fingerprint(params: dict[str, Any], keys: list[str]) -> str:
    """Hash of only the dotted ``keys`` a step reads; an unknown key is an error, not a no-op."""
    picked = {}
    for key in sorted(set(keys)):
        value = _lookup(params, key)
        if value is _MISSING:
            raise KeyError(f"params key '{key}' does not exist")
        picked[key] = value
    blob = json.dumps(picked, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def module_files(module: str) -> dict[str, Path]:
    """Source files of a module (one file) or a package (every ``.py`` below it), keyed by a stable name.

    Uses import specs only, so the module's own code is not executed.
    """
    spec = find_spec(module)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"no python module named '{module}'")
    origin = Path(spec.origin)
    if spec.submodule_search_locations is None:
        return {module: origin}
    files: dict[str, Path] = {}
    for location in spec.submodule_search_locations:
        base = Path(location)
        for file in sorted(base.rglob("*.py")):
            if "__pycache__" not in file.parts:
                files[f"{module}/{file.relative_to(base).as_posix()}"] = file
    return files


def code_fingerprint(modules: list[str]) -> str:
    """Hash of the source bytes of the named modules, independent of where the checkout lives."""
    digest = hashlib.sha256()
    files: dict[str, Path] = {}
    for module in modules:
        files |= module_files(module)
    for key in sorted(files):
        digest.update(f"{key}\0{file_md5(files[key])}\n".encode())
    return digest.hexdigest()[:16]


def without_engine(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` minus ``train.parallel``: where fits run never changes what is trained."""
    train = {k: v for k, v in params.get("train", {}).items() if k != "parallel"}
    return {**params, "train": train} if "train" in params else dict(params)


def run_fingerprint(dataset_md5: str, params_hash: str, code_hash: str) -> str:
    """One hash for one training input: same data, same relevant params, same code."""
    blob = f"data={dataset_md5};params={params_hash};code={code_hash}".encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class Inputs:
    """What one training run consumes, as hashes; recorded as model-version tags."""

    dataset_md5: str
    params_hash: str  # over the params training reads
    code_hash: str

    @property
    def fingerprint(self) -> str:
        return run_fingerprint(self.dataset_md5, self.params_hash, self.code_hash)

    def as_dict(self) -> dict[str, str]:
        return {**asdict(self), "fingerprint": self.fingerprint}

    def tags(self) -> dict[str, str]:
        return {TAG_PARAMS: self.params_hash, TAG_CODE: self.code_hash, TAG_FINGERPRINT: self.fingerprint}

    def changes(self, tags: dict[str, str], all_params_hash: str) -> list[str]:
        """What differs from the inputs recorded in a version's ``tags``, in words.

        A version without retraining tags is compared on the training flow's own tags.
        """
        params = (
            ("params hash", self.params_hash, tags.get(TAG_PARAMS))
            if TAG_PARAMS in tags
            else ("params hash (all params)", all_params_hash, tags.get("params_hash"))
        )
        pairs = [
            ("dataset md5", self.dataset_md5, tags.get("dataset_md5")),
            params,
            ("code hash", self.code_hash, tags.get(TAG_CODE, tags.get("code_hash"))),
        ]
        changed = [(label, new, old) for label, new, old in pairs if new != old]
        return [f"{label} {(old or 'unrecorded')[:12]} -> {new[:12]}" for label, new, old in changed]


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reason: str
    adopt: str | None = None  # champion version to record this run's tags on instead of training


def _same_training_inputs(tags: dict[str, str], inputs: Inputs, lineage: dict[str, str]) -> bool:
    """The training flow's own record proves these inputs: its fingerprint, or (older versions
    without one) the same dataset md5 and params hash at the same clean git commit."""
    if "fingerprint" in tags:
        return tags["fingerprint"] == lineage["fingerprint"]
    commit = lineage["git_commit"]
    return (
        commit != "uncommitted"
        and not commit.endswith("-dirty")
        and tags.get("git_commit") == commit
        and tags.get("dataset_md5") == inputs.dataset_md5
        and tags.get("params_hash") == lineage["params_hash"]
    )


def decide(
    inputs: Inputs,
    champion: dict[str, Any] | None,
    versions: list[dict[str, Any]],
    lineage: dict[str, str],
) -> Decision:
    """Retrain or skip, and why.

    Skip when the champion, or an earlier version that is not the champion, was trained from
    these exact inputs. ``lineage`` holds what the training flow would record for them
    (``fingerprint`` and ``params_hash`` over all params, ``git_commit``); a champion trained
    outside this flow is adopted when that record matches.
    """
    if champion is None:
        return Decision(True, "no champion yet: training the first model")
    version, tags = champion["version"], champion["tags"]
    if tags.get(TAG_FINGERPRINT) == inputs.fingerprint:
        return Decision(
            False,
            f"nothing changed: champion v{version} was trained from the same dataset "
            f"(md5 {inputs.dataset_md5[:12]}), params and code (fingerprint {inputs.fingerprint})",
        )
    if TAG_FINGERPRINT not in tags and _same_training_inputs(tags, inputs, lineage):
        return Decision(
            False,
            f"nothing changed: champion v{version} was trained from the same dataset, params and code "
            "(per its training record); recorded the retraining fingerprint on it",
            adopt=version,
        )
    tried = [v for v in versions if v["tags"].get(TAG_FINGERPRINT) == inputs.fingerprint]
    if tried:
        last = max(tried, key=lambda v: int(v["version"]))
        why = last["tags"].get("decision_reason", "no reason recorded")[:300]
        return Decision(
            False,
            f"v{last['version']} was already trained from these exact inputs and is not the "
            f"champion ({why}); training again would repeat it",
        )
    changes = inputs.changes(tags, lineage["params_hash"]) or ["inputs recorded differently"]
    return Decision(True, f"changed since champion v{version}: " + "; ".join(changes))
