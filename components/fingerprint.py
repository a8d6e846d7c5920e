"""Content hashes that decide whether a step's inputs changed.

The same hashes serve Prefect (skip a run, cache keys) and DVC parity: the hash
of a file is its md5, and the hash of a directory is computed exactly as DVC 3
computes a ``.dir`` md5 (without the ``.dir`` suffix), so
``dataset_fingerprint("data")`` equals the md5 recorded in ``data.dvc``.
``Inputs`` is the one fingerprint of a training run (dataset, the params that shape a version, the
contract and the code): the training flow records it on every version and skips a run that would
repeat one; the retraining flow's ``decide`` compares it with the champion's (pure: tags in, reason out).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from components import vocabulary as v

# Params that never change what a run registers: where fits run, where a server listens, and the
# paths of the data and the contract (their content is hashed instead: moving a file changes nothing).
RUNTIME_ONLY = (
    "train.parallel",
    "serve.host",
    "serve.port",
    "data.path",
    "validate.contract",
    "batch",
    "monitor",
    "serve.monitor_sample",
)


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


def release_params(params: dict[str, Any], contract_md5: str | None = None) -> dict[str, Any]:
    """``params`` without the runtime-only keys, plus the contract file's md5 (its rules are inputs too:
    a contract edit changes the fingerprint).

    A new copy: the caller's params are not touched.
    """
    out = json.loads(json.dumps(params))
    for dotted in RUNTIME_ONLY:
        *parents, last = dotted.split(".")
        node: Any = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    if contract_md5:
        out.setdefault("validate", {})["contract_md5"] = contract_md5
    return out


def run_fingerprint(dataset_md5: str, params_hash: str, code_hash: str) -> str:
    """One hash for one training input: same data, same relevant params, same code."""
    blob = f"data={dataset_md5};params={params_hash};code={code_hash}".encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class Inputs:
    """What one training run consumes, as hashes; recorded as model-version tags."""

    dataset_md5: str
    params_hash: str  # over release_params(...)
    code_hash: str

    @property
    def fingerprint(self) -> str:
        return run_fingerprint(self.dataset_md5, self.params_hash, self.code_hash)

    def as_dict(self) -> dict[str, str]:
        return {**asdict(self), "fingerprint": self.fingerprint}

    def tags(self) -> dict[str, str]:
        return {
            v.TAG_PARAMS_HASH: self.params_hash,
            v.TAG_CODE_HASH: self.code_hash,
            v.TAG_FINGERPRINT: self.fingerprint,
        }

    def changes(self, tags: dict[str, str]) -> list[str]:
        """What differs from the inputs recorded in a version's ``tags``, in words."""
        pairs = [
            ("dataset md5", self.dataset_md5, tags.get(v.TAG_DATASET_MD5)),
            ("params hash", self.params_hash, tags.get(v.TAG_PARAMS_HASH)),
            ("code hash", self.code_hash, tags.get(v.TAG_CODE_HASH)),
        ]
        changed = [(label, new, old) for label, new, old in pairs if new != old]
        return [f"{label} {(old or 'unrecorded')[:12]} -> {new[:12]}" for label, new, old in changed]


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reason: str
    adopt: str | None = None  # champion version to record this run's tags on instead of training


def run_inputs(dataset_md5: str, params: dict[str, Any], contract_md5: str | None, code_hash: str) -> Inputs:
    """The inputs of a training run on these params: what both flows fingerprint."""
    blob = json.dumps(release_params(params, contract_md5), sort_keys=True, separators=(",", ":")).encode()
    return Inputs(dataset_md5=dataset_md5, params_hash=hashlib.sha256(blob).hexdigest()[:16], code_hash=code_hash)


def _same_lineage(tags: dict[str, str], inputs: Inputs, git_commit: str) -> bool:
    """A version without a fingerprint (trained outside the flow) proves these inputs by its lineage:
    the same dataset md5 and params hash at the same clean git commit."""
    return (
        git_commit != "uncommitted"
        and not git_commit.endswith("-dirty")
        and tags.get(v.TAG_GIT_COMMIT) == git_commit
        and tags.get(v.TAG_DATASET_MD5) == inputs.dataset_md5
        and tags.get(v.TAG_PARAMS_HASH) == inputs.params_hash
    )


def decide(
    inputs: Inputs, champion: dict[str, Any] | None, versions: list[dict[str, Any]], git_commit: str
) -> Decision:
    """Retrain or skip, and why.

    Skip when the champion, or an earlier version that is not the champion, was trained from these
    exact inputs (the same fingerprint). A champion trained outside the flow, with no fingerprint,
    is adopted when its lineage proves the same inputs at ``git_commit``.
    """
    if champion is None:
        return Decision(True, "no champion yet: training the first model")
    version, tags = champion["version"], champion["tags"]
    if tags.get(v.TAG_FINGERPRINT) == inputs.fingerprint:
        return Decision(
            False,
            f"nothing changed: champion v{version} was trained from the same dataset "
            f"(md5 {inputs.dataset_md5[:12]}), params and code (fingerprint {inputs.fingerprint})",
        )
    if v.TAG_FINGERPRINT not in tags and _same_lineage(tags, inputs, git_commit):
        return Decision(
            False,
            f"nothing changed: champion v{version} was trained from the same dataset, params and code "
            "(per its lineage); recorded the fingerprint on it",
            adopt=version,
        )
    tried = [row for row in versions if row["tags"].get(v.TAG_FINGERPRINT) == inputs.fingerprint]
    if tried:
        last = max(tried, key=lambda row: int(row["version"]))
        why = last["tags"].get(v.TAG_DECISION_REASON, "no reason recorded")[:300]
        return Decision(
            False,
            f"v{last['version']} was already trained from these exact inputs and is not the "
            f"champion ({why}); training again would repeat it",
        )
    changes = inputs.changes(tags) or ["inputs recorded differently"]
    return Decision(True, f"changed since champion v{version}: " + "; ".join(changes))
