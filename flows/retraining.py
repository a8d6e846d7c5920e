"""The `retraining` flow: retrain only when the data, the params training reads or the code changed.

find data → fingerprint it (dataset md5, relevant params hash, code hash) → compare with the
champion → either skip and say why, or version the data with DVC, run `training-pipeline` as a
subflow and record the fingerprint on the new model version.

Started by a `mlops.model.drift` event (the deployment trigger in prefect.yaml passes the alarm's
batch as ``drift_batch``), the data is the champion's training data plus the labelled rows of that
batch when `mlops monitor --labels` kept some (``monitoring/labelled/<batch md5>.parquet``),
otherwise the current data; the summary says which, and the normal gate decides.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from components import dataset_settings
from components import fingerprint as fp
from components import vocabulary as v
from components.config import load_settings
from components.data import dataset as data_mod
from components.monitoring.retraining_data import TAG_LABELLED_BATCHES
from components.release.lineage import git_commit
from flows import steps
from flows.runtime import load_secret_env, prepare_environment, redact
from flows.steps import TRAINING_CODE  # the code a training run's fingerprint hashes
from flows.training import training_pipeline

DATA_SUFFIXES = (".csv", ".parquet", ".pq")
IO_RETRIES: dict[str, Any] = {"retries": 4, "retry_delay_seconds": [2, 5, 15, 30], "retry_jitter_factor": 0.3}


def newest_data_file(directory: Path) -> Path | None:
    """The most recently modified CSV/Parquet file in ``directory`` (hidden files ignored)."""
    if not directory.is_dir():
        return None
    files = [
        p
        for p in directory.iterdir()
        if p.is_file() and p.suffix.lower() in DATA_SUFFIXES and not p.name.startswith(".")
    ]
    return max(files, key=lambda p: (p.stat().st_mtime_ns, p.name), default=None)


def current_inputs(params: dict[str, Any], root: Path, dataset: Path) -> fp.Inputs:
    """The fingerprint a training run on ``dataset`` would record (the same function the training flow uses)."""
    contract = params.get("validate", {}).get("contract")
    contract_md5 = fp.dataset_fingerprint(root / contract) if contract else None
    return fp.run_inputs(fp.dataset_fingerprint(dataset), params, contract_md5, fp.code_fingerprint(TRAINING_CODE))


def read_registry(root: Path, name: str, alias: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The champion (version and tags) and every version's tags; a missing model means no champion."""
    from mlflow.exceptions import MlflowException

    from components.release import registry

    registry.configure_tracking(root)
    client = registry.client()
    try:
        aliases = client.get_registered_model(name).aliases
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None, []
        raise
    versions = [
        {"version": str(mv.version), "tags": dict(mv.tags)} for mv in client.search_model_versions(f"name='{name}'")
    ]
    champ = str(aliases[alias]) if alias in aliases else None
    return next((v for v in versions if v["version"] == champ), None), versions


def _run(root: Path, *args: str, timeout: float = 900) -> str:
    cmd = [sys.executable, "-m", "dvc", *args[1:]] if args[0] == "dvc" else list(args)
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(args)}` failed ({proc.returncode}): {redact(proc.stderr.strip())[-1500:]}")
    return proc.stdout.strip()


def dvc_target(root: Path, dataset: Path) -> str:
    """What DVC tracks for ``dataset``: the nearest enclosing path with a ``.dvc`` file, else the file."""
    rel = dataset.resolve().relative_to(root.resolve())
    for candidate in [rel, *list(rel.parents)[:-1]]:
        if (root / f"{candidate.as_posix()}.dvc").is_file():
            return candidate.as_posix()
    return rel.as_posix()


@task(name="load-secrets", timeout_seconds=120, **IO_RETRIES)
def load_secrets_task(secrets: dict[str, str]) -> list[str]:
    return load_secret_env(secrets)


@task(name="find-new-data", timeout_seconds=900)
def find_data_task(incoming: Path | None, dataset: Path, stage_dir: Path,
                   reading: Any | None = None) -> tuple[Path, Path | None]:  # fmt: skip
    """The file to fingerprint (newest incoming file, staged as Parquet, else data.path) and its source
    (``reading``: the contract's options for an incoming CSV)."""
    newest = newest_data_file(incoming) if incoming else None
    if newest is None:
        if not dataset.is_file():
            data_mod.load_dataset(dataset)  # raises DataNotFoundError with the how-to
        return dataset, None
    return data_mod.ingest(str(newest), stage_dir / dataset.name, reading), newest


@task(name="drift-data", timeout_seconds=900)
def drift_data_task(root: Path, drift_batch: str, champion: dict[str, Any] | None, dataset: Path,
                    stage_dir: Path) -> dict[str, Any]:  # fmt: skip
    from components.monitoring.retraining_data import drift_training_data

    return drift_training_data(root, drift_batch, champion, dataset, stage_dir)


@task(name="fingerprint-inputs", timeout_seconds=300)
def fingerprint_task(params: dict[str, Any], root: Path, staged: Path) -> fp.Inputs:
    return current_inputs(params, root, staged)


@task(name="read-registry", timeout_seconds=180, **IO_RETRIES)
def read_registry_task(root: Path, name: str, alias: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    return read_registry(root, name, alias)


@task(name="version-dataset", timeout_seconds=900)
def version_data_task(root: Path, source: Path | None, dataset: Path, expected_md5: str,
                      reading: Any | None = None) -> dict[str, Any]:  # fmt: skip
    """Copy new data into data.path (via ingest) and `dvc add` it; no DVC repository means not versioned."""
    if source is not None:
        data_mod.ingest(str(source), dataset, reading)
    if fp.dataset_fingerprint(dataset) != expected_md5:
        raise RuntimeError(f"{dataset} changed while retraining ran (expected md5 {expected_md5})")
    if not (root / ".dvc").is_dir():
        return {"tracked": False, "note": "not a DVC repository: the dataset was not versioned"}
    target = dvc_target(root, dataset)
    _run(root, "dvc", "add", "--quiet", target)
    query = [sys.executable, "-m", "dvc", "remote", "default"]
    found = subprocess.run(query, cwd=root, capture_output=True, text=True, timeout=120, check=False)
    remote = found.stdout.strip() if found.returncode == 0 else None  # exit 1: "No default remote set"
    return {"tracked": True, "target": target, "dvc_file": f"{target}.dvc", "remote": remote or None}


@task(name="dvc-push", timeout_seconds=1800, **IO_RETRIES)
def dvc_push_task(root: Path, dvc_file: str) -> str:
    return _run(root, "dvc", "push", "--quiet", dvc_file, timeout=1800) or "pushed"


@task(name="commit-data", timeout_seconds=120)
def commit_data_task(root: Path, dvc_file: str, message: str) -> str | None:
    """Commit only ``dvc_file`` (nothing else staged is swept in); None when it did not change."""
    if not _run(root, "git", "status", "--porcelain", "--", dvc_file):
        return None
    _run(root, "git", "add", "--", dvc_file)
    _run(root, "git", "commit", "--quiet", "-m", message, "--", dvc_file)
    return _run(root, "git", "rev-parse", "HEAD")


@task(name="record-fingerprint", timeout_seconds=180, **IO_RETRIES)
def record_task(root: Path, name: str, version: str, tags: dict[str, str]) -> None:
    from components.release import registry

    registry.configure_tracking(root)
    registry.set_version_tags(name, version, tags)


def render_markdown(r: dict[str, Any]) -> str:
    """The run summary: what happened, why, and the inputs compared."""
    champ = r.get("champion") or {"version": None, "tags": {}}
    keys = {"dataset_md5": v.TAG_DATASET_MD5, "params_hash": v.TAG_PARAMS_HASH, "code_hash": v.TAG_CODE_HASH,
            "fingerprint": v.TAG_FINGERPRINT}  # fmt: skip
    recorded = {name: champ["tags"].get(tag) for name, tag in keys.items()}
    lines = [
        f"# Retraining: {'trained' if r['action'] == 'train' else 'skipped'}",
        "",
        f"**Why:** {r['reason']}",
        "",
        f"| input | this run | champion {'v' + champ['version'] if champ['version'] else '(none)'} |",
        "|---|---|---|",
    ]
    lines += [f"| {k} | `{v}` | `{recorded[k] or '-'}` |" for k, v in r["inputs"].items()]
    lines += [""]
    if r.get("trigger"):
        lines.append(f"- trigger: {r['trigger']}")
    lines.append(f"- data source: `{r['source']}`")
    if r.get("trained_on"):
        lines.append(f"- trains on: {r['trained_on']}")
    dvc = r.get("dvc")
    if dvc:
        text = (
            (
                f"`dvc add {dvc['target']}`, push: {dvc.get('pushed', 'no default remote')}, "
                f"commit: {dvc.get('commit') or 'not committed'}"
            )
            if dvc["tracked"]
            else dvc["note"]
        )
        lines.append(f"- dataset version: {text}")
    if r.get("version"):
        aliases = ", ".join(f"@{a}" for a in r["aliases"]) or "no alias"
        how = "already trained from these inputs, reused" if r.get("training_skipped") else "registered"
        lines.append(f"- training: {how} `{r['registered_model']}` version {r['version']} ({aliases})")
    if r.get("adopted"):
        lines.append(f"- recorded the fingerprint on champion v{r['adopted']}")
    if r.get("secrets_loaded"):
        lines.append(f"- loaded from Secret blocks: {', '.join(r['secrets_loaded'])} (values not shown)")
    return "\n".join(lines) + "\n"


@flow(name="retraining", timeout_seconds=4 * 3600)
def retraining(
    params_path: str = "params.yaml",
    incoming_dir: str | None = None,
    commit_data: bool = False,
    overrides: list[str] | None = None,
    secrets: dict[str, str] | None = None,
    drift_batch: str | None = None,
    drift_model: str | None = None,
) -> dict[str, Any]:
    """Retrain when new data, changed params or changed code call for it; otherwise skip and say why.

    ``incoming_dir`` (relative to the project) holds new CSV/Parquet files, newest wins; without
    one the current ``data.path`` is checked. ``secrets`` maps environment variables to Prefect
    Secret block names, loaded only where the variable is unset. ``drift_batch`` (the batch of a
    `mlops.model.drift` alarm: a path, an md5, several joined by commas) trains on the champion's
    data plus that batch's labelled rows when there are some; ``drift_model`` is the alarm's model.
    """
    logger = get_run_logger()
    root = Path(params_path).resolve().parent
    prepare_environment(root)
    loaded = load_secrets_task(secrets) if secrets else []
    settings = load_settings(params_path, overrides)
    contract = dataset_settings.load_configured_contract(settings, root)
    task = contract.task if contract is not None else steps.guessed_task(settings, root)  # as the flow resolves it
    settings = dataset_settings.resolve(settings, contract, task=task)
    name, params = settings.promote.registered_model, settings.as_params()
    dataset = root / settings.data.path
    reading = contract.reading if contract is not None else None  # how an incoming CSV is split into columns
    incoming = root / incoming_dir if incoming_dir else None
    if incoming and not incoming.is_dir():
        logger.warning("incoming directory %s does not exist: checking %s", incoming, settings.data.path)
    result: dict[str, Any] = {
        "registered_model": name,
        "secrets_loaded": loaded,
        "version": None,
        "aliases": [],
        "dvc": None,
    }
    if drift_batch is not None:
        result["trigger"] = f"mlops.model.drift of {drift_model or name}, batch {drift_batch or '(none named)'}"
        logger.info("started by %s", result["trigger"])
    if drift_model and drift_model != name:  # a trigger matching every model's events: not this one's
        reason = f"the drift alarm is about model {drift_model}; this deployment retrains {name}"
        logger.info("retraining skipped: %s", reason)
        result |= {"action": "skip", "reason": reason, "source": str(settings.data.path), "inputs": {},
                   "champion": None, "adopted": None}  # fmt: skip
        result["markdown"] = redact(render_markdown(result))
        create_markdown_artifact(result["markdown"], key="retraining-summary", description="retraining: what and why")
        return result
    with tempfile.TemporaryDirectory(prefix="retraining-") as stage:
        champion, versions = read_registry_task(root, name, settings.promote.alias)
        drift = drift_data_task(root, drift_batch, champion, dataset, Path(stage)) if drift_batch is not None else None
        if drift and drift["staged"] is not None:
            staged, source = drift["staged"], drift["staged"]
            shown = f"{settings.data.path} (the champion's data plus labelled rows)"
        else:
            staged, source = find_data_task(incoming, dataset, Path(stage), reading)
            shown = str(source or settings.data.path)
        if drift is not None:
            result["trained_on"] = drift["note"]
            logger.info("trains on %s", drift["note"])
        inputs = fingerprint_task(params, root, staged)
        decision = fp.decide(inputs, champion, versions, git_commit(root))
        result |= {
            "action": "train" if decision.retrain else "skip",
            "reason": decision.reason,
            "source": shown,
            "inputs": inputs.as_dict(),
            "champion": champion,
            "adopted": decision.adopt,
        }
        logger.info("retraining %s: %s", "needed" if decision.retrain else "skipped", decision.reason)
        if decision.adopt:
            record_task(root, name, decision.adopt, inputs.tags())
        if decision.retrain:
            dvc = version_data_task(root, source, dataset, inputs.dataset_md5, reading)
            if dvc["tracked"] and dvc["remote"]:
                dvc["pushed"] = dvc_push_task(root, dvc["dvc_file"])
            if dvc["tracked"] and commit_data:
                dvc["commit"] = commit_data_task(root, dvc["dvc_file"], f"data: dataset md5 {inputs.dataset_md5}")
            result["dvc"] = dvc
            summary = training_pipeline(params_path=params_path, overrides=overrides)
            version = str(summary["version"])
            tags = inputs.tags() | {"retraining.reason": decision.reason[:500]}
            if drift is not None:
                tags |= {"retraining.trigger": result["trigger"][:500], "retraining.data": drift["note"][:500]}
                tags |= {TAG_LABELLED_BATCHES: ",".join(drift["md5s"])} if drift["md5s"] else {}
            record_task(root, name, version, tags)
            result |= {
                "version": version,
                "aliases": list(summary.get("aliases") or []),
                "training_skipped": bool(summary.get("skipped")),
            }
    result["markdown"] = redact(render_markdown(result))
    create_markdown_artifact(result["markdown"], key="retraining-summary", description="retraining: what and why")
    return result
