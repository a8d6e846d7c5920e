"""What scoring a batch needs to know about the model: the exact version behind an alias, the
contract it was trained with, the data it was trained on, and a function that scores raw rows.

Everything here is read from the registry and the version's run, never from today's params
alone: a batch is checked against the contract of the version that scores it, and drift is
measured against that version's own training data (its ``dataset_md5``, through the DVC cache).
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components import vocabulary as v
from components.config import ConfigError, Settings

if TYPE_CHECKING:
    import pandas as pd

    from components.data.contract import Contract
    from components.inference.scoring import Predict

# Where a run may keep a copy of the contract it validated with, checked in this order.
STORED_CONTRACT_DIRS = ("contract", "validation", "")
REFERENCE_ROWS = 200_000  # drift compares samples anyway: a bigger reference only costs memory


class NoChampionError(LookupError):
    """The model has no version under the alias: there is nothing to score with (exit 5)."""


@dataclass(frozen=True)
class Champion:
    """The exact version an alias pointed at when a batch was scored."""

    name: str
    version: str
    alias: str
    uri: str  # models:/<name>/<version>: the version, not the alias, which may move while we score
    run_id: str | None  # the pipeline run that logged params.json and the validation report
    model_run_id: str | None
    dataset_md5: str | None
    dataset_path: str | None
    task: str

    def record(self) -> dict[str, Any]:
        return asdict(self)


def resolve_champion(name: str, alias: str = v.ALIAS_CHAMPION) -> Champion:
    """The version ``name@alias`` points at now, with the tags scoring needs; NoChampionError if none."""
    from components.release import registry

    version = registry.alias_version(name, alias)
    if version is None:
        raise NoChampionError(
            f"model '{name}' has no @{alias} version: nothing to score with "
            f"(train one with `mlops run`, or promote a version with `mlops promote`)"
        )
    return registered_version(name, version, alias)


def registered_version(name: str, version: str, alias: str = "") -> Champion:
    """Version ``version`` of ``name`` with the tags scoring needs (``alias``: how it was found, if by one)."""
    from components.release import registry

    mv = registry.client().get_model_version(name, version)
    tags = dict(mv.tags)
    return Champion(name=name, version=version, alias=alias, uri=f"models:/{name}/{version}",
                    run_id=tags.get(v.TAG_PIPELINE_RUN) or mv.run_id, model_run_id=mv.run_id,
                    dataset_md5=tags.get(v.TAG_DATASET_MD5), dataset_path=tags.get(v.TAG_DATASET_PATH),
                    task=tags.get(v.TAG_TASK, "binary"))  # fmt: skip


def _stored_contract(run_id: str) -> tuple[Contract, str] | None:
    """A contract YAML logged with the run (``contract/``, ``validation/`` or the root), if there is one."""
    import mlflow

    from components.data.contract import load_contract
    from components.release import registry

    c = registry.client()
    for folder in STORED_CONTRACT_DIRS:
        for item in c.list_artifacts(run_id, folder or None):
            if not item.is_dir and item.path.endswith((".yaml", ".yml")):
                with tempfile.TemporaryDirectory() as tmp:
                    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=item.path, dst_path=tmp)
                    return load_contract(local), f"runs:/{run_id}/{item.path} (stored with the run)"
    return None


def version_contract(champion: Champion, root: Path, settings: Settings) -> tuple[Contract | None, str]:
    """The contract ``champion`` was trained with, and where it came from (for the metadata).

    A copy stored with its run wins. Otherwise ``validate.contract`` in the run's ``params.json``
    names a file, read from the project as it is now (said in the note: it may have been edited
    since). A run without params.json falls back to today's ``validate.contract``. None: the
    version was trained with the basic checks only.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from components.data.contract import load_contract

    if champion.run_id:
        stored = _stored_contract(champion.run_id)
        if stored is not None:
            return stored
    try:
        params = mlflow.artifacts.load_dict(f"runs:/{champion.run_id}/params.json") if champion.run_id else None
        where = f"validate.contract in params.json of v{champion.version}'s run {champion.run_id}"
    except (MlflowException, OSError):
        params = None
    if params is None:
        params = settings.as_params()
        where = f"today's validate.contract (v{champion.version}'s run has no params.json)"
    path = (params.get("validate") or {}).get("contract")
    if not path:
        return None, f"none: {where} is null, so the basic checks"
    file = Path(path) if Path(path).is_absolute() else root / path
    if not file.is_file():
        raise ConfigError(f"validate.contract: {path} ({where}) is not a file under {root}; "
                          "restore it to score with this version")  # fmt: skip
    return load_contract(file), f"{file} ({where}; read from the project, not stored with the run)"


def training_reference(
    champion: Champion, root: Path, settings: Settings, contract: Contract | None
) -> tuple[pd.DataFrame | None, str]:
    """The data ``champion`` was trained on (by its ``dataset_md5``), and a note saying which; None to skip drift.

    Looked up in the DVC cache first (as training does), then in the version's dataset path and
    ``data.path`` when the file there still has that md5.
    """
    from components.data.dataset import file_md5, find_in_dvc_cache
    from components.data.reading import read_dataset

    md5, who = champion.dataset_md5, f"champion v{champion.version}'s training data"
    if not md5:
        return None, f"skipped: v{champion.version} has no {v.TAG_DATASET_MD5} tag"
    found, note = find_in_dvc_cache(root, md5), f"{who} (md5 {md5}, from the DVC cache)"
    if found is None:
        for candidate in dict.fromkeys(p for p in (champion.dataset_path, settings.data.path) if p):
            path = Path(candidate) if Path(candidate).is_absolute() else root / candidate
            if path.is_file() and file_md5(path) == md5:
                found, note = path, f"{who} (md5 {md5}, {candidate})"
                break
    if found is None:
        return None, f"skipped: {who} (md5 {md5}) is neither in the DVC cache nor at {settings.data.path}"
    frame = read_dataset(found, contract)
    if len(frame) > REFERENCE_ROWS:
        frame = frame.sample(n=REFERENCE_ROWS, random_state=0)
    return frame, note


def load_scorer(champion: Champion) -> tuple[Predict, dict[str, Any]]:
    """A function from raw feature rows to the pyfunc's answer, and what the metadata records of it.

    The registered pyfunc is loaded (so a version that no longer loads fails here, before any
    reading), then unwrapped: its ``TrainedModel.predict_frame`` gives the same answers as
    ``pyfunc.predict`` without the signature round trip. A pyfunc that is not ours is used as is.
    """
    import mlflow

    from components.model.trained import pyfunc_input

    pyfunc = mlflow.pyfunc.load_model(champion.uri)
    try:
        inner = getattr(pyfunc.unwrap_python_model(), "_model", None)
    except Exception:  # not a python_function model of ours: score through the pyfunc
        inner = None
    if inner is not None and hasattr(inner, "predict_frame") and hasattr(inner, "classes"):
        return inner.predict_frame, {"task": inner.task, "classes": list(inner.classes), "family": inner.family,
                                     "scorer": "TrainedModel.predict_frame (unwrapped pyfunc)"}  # fmt: skip

    def predict(rows: pd.DataFrame) -> pd.DataFrame:
        return pyfunc.predict(pyfunc_input(pyfunc, rows))

    return predict, {"task": champion.task, "classes": [], "scorer": "mlflow pyfunc"}


def basic_batch_contract(settings: Settings, task: str, reference: pd.DataFrame | None, data_path: Path) -> Contract:
    """For a version trained without a contract: the basic checks training ran (``validate.*``), built
    from its training data when found, else from the batch's first rows."""
    import pandas as pd
    import pyarrow.parquet as pq

    from components.validation.validate import basic_contract

    if reference is None:  # the batch's head: enough to say which columns there are and their types
        if data_path.suffix.lower() in (".parquet", ".pq"):
            reference = next(pq.ParquetFile(data_path).iter_batches(batch_size=1000)).to_pandas()
        else:
            reference = pd.read_csv(data_path, nrows=1000)
    nulls = settings.validate_.max_null_fraction
    return basic_contract(reference, settings.data.target, min_rows=1, max_null_fraction=nulls, task=task)
