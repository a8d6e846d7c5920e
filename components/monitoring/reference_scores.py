"""The model's own predictions on a sample of its training data: the other side of prediction drift.

Every drift report compares the predictions on a batch with the model's predictions on a seeded
sample of its reference (training) data. Scoring that sample costs as much as scoring a batch of
its size, and the answer is the same for every batch of a version. So it is computed once:

- at registration (:func:`store_reference_scores`), beside the logged model, on the reference the
  batch flow will load (:func:`components.inference.champion.training_reference`), so the first
  batch of a version does not pay for it;
- otherwise at the first batch, kept in a local cache folder (``<out>/.cache``) for the next ones.

Both are keyed by a digest of the sample (content, columns, types), the target and the task: a
different reference, contract, seed or sample size is another sample, so it is scored afresh.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from components.model.tasks import REGRESSION
from components.monitoring.drift_report import MAX_ROWS, SEED

Predict = Callable[[pd.DataFrame], pd.DataFrame]

ARTIFACT = "monitoring/reference_predictions.parquet"  # on the run that logged the model
_KEY = b"mlops.sample_key"  # Parquet schema metadata: which sample the predictions are of


def prediction_column(task: str) -> str:
    """The prediction whose distribution is compared: the value for regression, the label otherwise."""
    return "value" if task == REGRESSION else "label"


def reference_sample(reference: pd.DataFrame, max_rows: int = MAX_ROWS) -> pd.DataFrame:
    return reference if len(reference) <= max_rows else reference.sample(n=max_rows, random_state=SEED)


def sample_key(sample: pd.DataFrame, target: str, task: str, model_key: str = "") -> str | None:
    """A digest of what the predictions depend on besides the model; None when pandas cannot hash the sample."""
    digest = hashlib.sha256(f"{model_key}\0{task}\0{target}\0".encode())
    digest.update(repr([(str(c), str(t)) for c, t in sample.dtypes.items()]).encode())
    try:
        digest.update(pd.util.hash_pandas_object(sample, index=True).to_numpy().tobytes())
    except (TypeError, ValueError):
        return None
    return digest.hexdigest()[:24]


def _write(predictions: pd.Series, key: str, path: Path) -> None:
    """Whole or not at all, also with two batches writing the same file at once."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(predictions.reset_index(drop=True).to_frame(), preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _KEY: key.encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    pq.write_table(table, partial)
    os.replace(partial, path)


def _read(path: Path, key: str, column: str, sample: pd.DataFrame) -> pd.Series | None:
    """The stored predictions when they are of this very sample, else None (recomputed, never trusted)."""
    import pyarrow.parquet as pq

    with contextlib.suppress(Exception):  # a file that cannot be read is only recomputed
        table = pq.read_table(path)
        if (table.schema.metadata or {}).get(_KEY) == key.encode() and table.num_rows == len(sample):
            return table.column(column).to_pandas().set_axis(sample.index)
    return None


def _stored_with_model(run_id: str, key: str, column: str, sample: pd.DataFrame) -> pd.Series | None:
    """The predictions logged at registration on the model's run, if they are of this sample."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp, contextlib.suppress(Exception):  # none stored: scored here
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=ARTIFACT, dst_path=tmp)
        return _read(Path(local), key, column, sample)
    return None


def reference_predictions(
    reference: pd.DataFrame,
    predict: Predict,
    target: str,
    task: str,
    max_rows: int = MAX_ROWS,
    *,
    cache: Path | None = None,
    model_key: str | None = None,
    model_run_id: str | None = None,
) -> tuple[pd.DataFrame, pd.Series | None, str | None]:
    """A seeded sample of ``reference`` and the model's predictions on it (None and why, when it cannot score it).

    Looked up first among the predictions stored with the model at registration (``model_run_id``),
    then in ``cache`` (keyed by ``model_key``, the exact model: a version's URI and run id); scored
    otherwise, and kept in ``cache``.
    """
    sample, column = reference_sample(reference, max_rows), prediction_column(task)
    content = sample_key(sample, target, task)
    if content is not None and model_run_id:
        stored = _stored_with_model(model_run_id, content, column, sample)
        if stored is not None:
            return sample, stored, None
    cached, key = None, ""
    if content is not None and cache is not None and model_key:
        key = sample_key(sample, target, task, model_key) or ""
        cached = cache / f"reference-predictions-{key}.parquet"
        kept = _read(cached, key, column, sample) if cached.is_file() else None
        if kept is not None:
            return sample, kept, None
    try:
        answers = predict(sample.drop(columns=[target], errors="ignore"))
    except Exception as err:  # monitoring never stops a scored batch: the report says what was not compared
        return sample, None, f"the model could not score its reference: {type(err).__name__}: {err}"
    predictions = answers[column].set_axis(sample.index)
    if cached is not None:
        with contextlib.suppress(OSError):  # no cache is a slower second batch, not a failed one
            _write(predictions, key, cached)
    return sample, predictions, None


def store_reference_scores(reference: pd.DataFrame, predict: Predict, target: str, task: str, run_id: str,
                           max_rows: int = MAX_ROWS) -> str:  # fmt: skip
    """Score the reference sample now and log it on the model's run ``run_id``; says what it stored."""
    from components.release import registry

    sample = reference_sample(reference, max_rows)
    key = sample_key(sample, target, task)
    if key is None:
        return "not stored: pandas cannot hash the reference sample (scored at the first batch instead)"
    predictions = predict(sample.drop(columns=[target], errors="ignore"))[prediction_column(task)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(ARTIFACT).name
        _write(predictions.set_axis(sample.index), key, path)
        registry.client().log_artifact(run_id, str(path), str(Path(ARTIFACT).parent))
    return f"{len(sample)} rows of the training data scored and stored as {ARTIFACT}"
