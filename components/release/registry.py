"""Tracking and the model registry (MLflow). Aliases, never stages.

The default store is a SQLite file and an artifact folder in the project;
``MLFLOW_TRACKING_URI`` points the same code at a server.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

from components import vocabulary as v
from components.model.files import save_model
from components.model.trained import TrainedModel, canonical_frame

log = logging.getLogger(__name__)

_uris_we_set: set[str] = set()
# What ships inside every MLflow model: the model package, and nothing else of components/.
_MODEL_PACKAGE = Path(__file__).resolve().parents[1] / "model"


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str
    model_uri: str


def configure_tracking(root: str | Path, experiment: str | None = None) -> str:
    """Point MLflow at ``MLFLOW_TRACKING_URI`` or the project's SQLite store; return the URI.

    ``experiment``: where new runs go, created when missing (a training run passes its registered
    model's name: one experiment per model). Without it no experiment is created, for commands
    that only read or tag existing runs.
    """
    import mlflow

    root = Path(root).resolve()
    # mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI; only a value we never set is the user's.
    from_env = os.environ.get("MLFLOW_TRACKING_URI")
    user_uri = from_env if from_env and from_env not in _uris_we_set else None
    uri = user_uri or f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    if not user_uri and os.environ.get("MLFLOW_TRACKING_URI"):
        _uris_we_set.add(os.environ["MLFLOW_TRACKING_URI"])
    mlflow.set_registry_uri(uri)
    if experiment is not None:
        use_experiment(experiment, None if uri.startswith("http") else root / "mlartifacts")
    return uri


def use_experiment(name: str, artifacts: Path | None) -> None:
    """Make ``name`` the experiment of new runs; a new one keeps its artifacts under ``artifacts``
    (None: the tracking server's default), not in a ``mlruns`` folder of whatever directory we run in."""
    import mlflow

    if mlflow.get_experiment_by_name(name) is None:
        try:
            mlflow.create_experiment(name, artifact_location=artifacts.as_uri() if artifacts else None)
        except Exception:  # another process created it first
            if mlflow.get_experiment_by_name(name) is None:
                raise
    mlflow.set_experiment(name)


# The libraries a model family needs beyond what every model needs (components.training.candidate_settings).
FAMILY_PACKAGES = {"torch_mlp": ("torch",), "lightgbm": ("lightgbm",)}


@functools.cache
def pip_requirements(family: str) -> tuple[str, ...]:
    """Exact pins (the installed versions) for a ``family`` model's environment, computed once per family
    (no slow inference per model)."""
    names = ["mlflow", "scikit-learn", "skops", "pandas", "numpy", "pyarrow", "scipy", *FAMILY_PACKAGES.get(family, ())]
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            pins.append(name)
    return tuple(pins)


def _shipped_code(tmp: Path) -> Path:
    """``components/`` holding only the model package, so the model imports it by its real name."""
    shipped = tmp / "code" / "components"
    shutil.copytree(_MODEL_PACKAGE, shipped / "model", ignore=shutil.ignore_patterns("__pycache__"))
    (shipped / "__init__.py").write_text("")
    return shipped


def log_model(model: TrainedModel, example: pd.DataFrame) -> str:
    """Log ``model`` as a pyfunc in the active run; return its model URI."""
    import mlflow
    from mlflow.models import infer_signature

    example = example[model.feature_columns].head(5)
    if model.kinds is not None:  # the signature declares what components.model.trained.pyfunc_input hands the model
        example = canonical_frame(example, model.kinds, keep_categorical=False)
    with warnings.catch_warnings():
        # MLflow hints that integer columns cannot hold blanks. The inputs here are floats and text (the canonical
        # frame); only the answer's label is integral (classes 0/1/2), and answers have no blanks.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer", category=UserWarning)
        signature = infer_signature(example, model.predict_frame(example))
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_model(model, Path(tmp) / "model")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(_MODEL_PACKAGE / "pyfunc_entry.py"),
            artifacts={"model_dir": str(model_dir)},
            code_paths=[str(_shipped_code(Path(tmp)))],
            signature=signature,
            input_example=example,
            pip_requirements=list(pip_requirements(model.family)),
        )
    return info.model_uri


def register(model_uri: str, name: str, run_id: str, tags: dict[str, str]) -> RegisteredVersion:
    """Create a new version of registered model ``name`` carrying lineage ``tags``."""
    import mlflow

    mv = mlflow.register_model(model_uri, name, tags=tags)
    log.info("registered %s version %s", name, mv.version)
    return RegisteredVersion(name=name, version=str(mv.version), run_id=run_id, model_uri=model_uri)


def client():
    from mlflow import MlflowClient

    return MlflowClient()


_NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def alias_version(name: str, alias: str) -> str | None:
    """The version an alias points at, or None if the model or alias does not exist.

    Any other failure (a tracking server that is down) propagates, so callers retry instead of
    mistaking an outage for "no champion".
    """
    from mlflow.exceptions import MlflowException

    try:
        return str(client().get_model_version_by_alias(name, alias).version)
    except MlflowException as err:
        if err.error_code in _NOT_FOUND:
            return None
        raise


def set_alias(name: str, alias: str, version: str) -> None:
    client().set_registered_model_alias(name, alias, version)


def delete_alias(name: str, alias: str) -> None:
    from mlflow.exceptions import MlflowException

    with contextlib.suppress(MlflowException):
        client().delete_registered_model_alias(name, alias)


def set_version_tags(name: str, version: str, tags: dict[str, Any]) -> None:
    c = client()
    for key, value in tags.items():
        c.set_model_version_tag(name, version, key, str(value))


def find_completed(name: str, fingerprint: str) -> dict[str, Any] | None:
    """The newest version whose run finished (tag ``completed``) with this exact fingerprint."""
    for row in list_versions(name):
        if row["tags"].get(v.TAG_FINGERPRINT) == fingerprint and row["tags"].get(v.TAG_COMPLETED) == "true":
            return row
    return None


def list_versions(name: str) -> list[dict[str, Any]]:
    """Every version of ``name``, newest first, with aliases, tags and its run's metrics."""
    from mlflow.exceptions import MlflowException

    c = client()
    try:
        aliases_by_version: dict[str, list[str]] = {}
        for alias, ver in c.get_registered_model(name).aliases.items():
            aliases_by_version.setdefault(str(ver), []).append(alias)
    except MlflowException:
        return []
    rows = []
    for mv in c.search_model_versions(f"name='{name}'"):
        metrics = c.get_run(mv.run_id).data.metrics if mv.run_id else {}
        rows.append(
            {
                "version": str(mv.version),
                "aliases": sorted(aliases_by_version.get(str(mv.version), [])),
                "tags": dict(mv.tags),
                "metrics": metrics,
                "run_id": mv.run_id,
                "created": mv.creation_timestamp,
            }
        )
    return sorted(rows, key=lambda r: int(r["version"]), reverse=True)
