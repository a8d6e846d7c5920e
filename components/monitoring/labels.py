"""Late labels: join them to what `mlops predict` scored, measure the realized metrics, keep the rows.

Labels arrive as a CSV or Parquet file of ``inference_id`` and the target (under the contract's
target name, or ``label`` / ``value``). They join the predictions files of a folder (each with its
metadata JSON beside it, see ``components.inference.batch``) by ``inference_id``. An id built from
a contract key repeats when the same key is scored in several batches: a label joins the newest
scoring of its id by that model, and the join says how many ids it chose among several. Labels
without a prediction (missing) and predictions without a label (extra, counted in the files the
labels reached) are counted, never an error.

The labelled rows (the batch's raw features, read back by ``batch_row``, plus the target) are
what retraining adds to its data: :func:`labelled_rows` and :func:`save_labelled`.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from components.data.contract import DataReadError
from components.data.dataset import DataNotFoundError, load_dataset_file, write_parquet
from components.evaluation.metrics import task_metrics
from components.model import tasks

ACTUAL = "actual"  # the label's column once read: never clashes with the predictions' `label`
LABEL_ALIASES = ("label", "value")  # accepted instead of the target's own name
META_COLUMNS = ["source", "batch_path", "batch_md5", "scored_at"]
LABELLED_DIR = Path("monitoring") / "labelled"  # under the params folder: <batch md5>.parquet


@dataclass(frozen=True)
class LabelJoin:
    """Labels joined to predictions, and the counts of what did not join."""

    joined: pd.DataFrame  # one row per matched id: the newest scoring's columns plus ACTUAL
    n_labels: int  # distinct labelled ids
    missing: int  # labelled ids with no scoring
    extra: int  # scored rows without a label, in the predictions files the labels reached
    repeated: int  # matched ids scored more than once: joined to the newest scoring
    duplicate_labels: int  # ids labelled more than once: the last label kept
    missing_examples: list[str] = field(default_factory=list)

    @property
    def n_matched(self) -> int:
        return len(self.joined)


def read_labels(path: str | Path, target: str) -> pd.DataFrame:
    """``inference_id`` (text) and ``ACTUAL`` from a CSV or Parquet file; blank labels are dropped.

    The label column is ``target``, else ``label``, else ``value``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"labels file {path} not found")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, dtype={"inference_id": str}, skipinitialspace=True)
    except (ValueError, OSError, pa.ArrowException) as err:
        raise DataReadError(f"{path}: not a readable CSV or Parquet file: {err}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    found = next((c for c in (target, *LABEL_ALIASES) if c in frame.columns), None)
    if "inference_id" not in frame.columns or found is None:
        raise DataReadError(f"{path}: a labels file needs the columns inference_id and {target} (or label/value); "
                            f"it has {', '.join(frame.columns) or 'none'}")  # fmt: skip
    out = pd.DataFrame({"inference_id": frame["inference_id"], ACTUAL: frame[found]})
    out = out[out["inference_id"].notna() & out[ACTUAL].notna()]
    return out.assign(inference_id=out["inference_id"].astype(str).str.strip()).reset_index(drop=True)


def scorings(folder: str | Path, model: str) -> list[tuple[Path, dict[str, Any]]]:
    """The predictions files of ``folder`` that ``model`` scored, with their metadata, oldest first."""
    found = []
    for path in sorted(Path(folder).glob("*.parquet")) if Path(folder).is_dir() else []:
        try:
            meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a scoring without its metadata cannot say which model or batch it was
        if meta.get("status") == "scored" and (meta.get("model") or {}).get("name") == model:
            found.append((path, meta))
    return sorted(found, key=lambda item: (str(item[1].get("created", "")), item[0].name))


def read_predictions(
    files: list[tuple[Path, dict[str, Any]]], ids: set[str] | None = None
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The scored rows of ``files`` whose id is in ``ids`` (all rows when None), with ``META_COLUMNS``;
    and the number of rows each file holds (for the count of extra predictions)."""
    frames, sizes = [], {}
    for path, meta in files:
        try:
            sizes[str(path)] = pq.ParquetFile(path).metadata.num_rows
            # Only the labelled ids' rows are read: a night's file can hold millions of rows.
            wanted = [("inference_id", "in", sorted(ids))] if ids is not None else None
            frame = pq.read_table(path, filters=wanted).to_pandas()
        except (pa.ArrowException, OSError):
            sizes.pop(str(path), None)
            continue  # being written or damaged: the other files still join
        frame["inference_id"] = frame["inference_id"].astype(str)
        batch = meta.get("batch") or {}
        frames.append(frame.assign(source=str(path), batch_path=batch.get("path"), batch_md5=batch.get("md5"),
                                   scored_at=str(meta.get("created", ""))))  # fmt: skip
    if not frames:
        return pd.DataFrame(columns=["inference_id", "batch_row", "model_version", *META_COLUMNS]), sizes
    return pd.concat(frames, ignore_index=True), sizes


def join_labels(labels: pd.DataFrame, predictions: pd.DataFrame, sizes: dict[str, int] | None = None) -> LabelJoin:
    """Each label joined to the newest scoring of its id (``scored_at``, then the file's name).

    ``predictions`` holds at least the rows of the labelled ids, in scoring order; ``sizes`` (rows per
    ``source`` file) counts the extra predictions when ``predictions`` holds only the labelled ids.
    """
    n_given = len(labels)
    labels = labels.drop_duplicates("inference_id", keep="last")
    order = predictions.sort_values(["scored_at", "source"], kind="stable")
    counts = order["inference_id"].value_counts()
    newest = order.drop_duplicates("inference_id", keep="last")
    joined = labels.merge(newest, on="inference_id", how="inner")
    missing_ids = labels.loc[~labels["inference_id"].isin(newest["inference_id"]), "inference_id"]
    labelled = order["inference_id"].isin(labels["inference_id"])
    reached = order.loc[labelled, "source"].unique()
    rows = sizes or order["source"].value_counts().to_dict()
    extra = sum(int(rows.get(src, 0)) - int((order["source"] == src)[labelled].sum()) for src in reached)
    return LabelJoin(
        joined=joined.reset_index(drop=True),
        n_labels=len(labels),
        missing=len(missing_ids),
        extra=extra,
        repeated=int((counts.reindex(joined["inference_id"]) > 1).sum()),
        duplicate_labels=n_given - len(labels),
        missing_examples=missing_ids.head(5).tolist(),
    )


def _encode(actual: pd.Series, task: str, classes: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Encoded targets and a mask of the rows kept: unknown labels (or non-numbers) are left out."""
    if task == tasks.REGRESSION:
        values = pd.to_numeric(actual, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        keep = np.isfinite(values)
        return values[keep], keep
    # By text: a CSV's "1" is the class 1 of a model trained on integers, and "1.0" too.
    index = {str(c): i for i, c in enumerate(classes)}
    index |= {str(float(c)): i for i, c in enumerate(classes) if isinstance(c, int | float)}
    codes = actual.map(lambda x: index.get(str(x).strip(), -1)).to_numpy(dtype=np.int64)
    keep = codes >= 0
    return codes[keep], keep


def _scores(rows: pd.DataFrame, task: str, classes: list[Any]) -> np.ndarray:
    if task == tasks.REGRESSION:
        return rows["value"].to_numpy(dtype=np.float64)
    if task == tasks.BINARY:
        return rows["probability"].to_numpy(dtype=np.float64)
    return rows[[tasks.proba_column(c) for c in classes]].to_numpy(dtype=np.float64)


def realized_metrics(rows: pd.DataFrame, task: str, classes: list[Any], threshold: float = 0.5) -> dict[str, Any]:
    """The task's metrics of one version's joined rows: ``{"n", "unknown_labels", "metrics", "note"}``.

    Labels the version never saw (or a regression label that is not a number) are counted and left
    out. A binary metric that needs both classes (roc_auc, pr_auc) is left out when only one occurs.
    """
    y, keep = _encode(rows[ACTUAL], task, classes)
    scores = _scores(rows, task, classes)[keep]
    out: dict[str, Any] = {"n": int(keep.sum()), "unknown_labels": int((~keep).sum()), "metrics": {}, "note": ""}
    if not len(y):
        out["note"] = "no label the version knows"
        return out
    if task == tasks.BINARY and len(np.unique(y)) < 2:  # roc_auc and pr_auc need both classes
        from sklearn import metrics as m

        pred, clipped = (scores >= threshold).astype(int), np.clip(scores, 1e-15, 1 - 1e-15)
        out["metrics"] = {"accuracy": float(np.mean(pred == y)), "f1": float(m.f1_score(y, pred, zero_division=0)),
                          "log_loss": float(m.log_loss(y, clipped, labels=[0, 1])),
                          "brier": float(np.mean((scores - y) ** 2))}  # fmt: skip
        out["note"] = "one class in the labels: roc_auc, pr_auc and balanced_accuracy left out"
        return out
    n_classes = len(classes) if task == tasks.MULTICLASS else None
    values = task_metrics(task, y, scores, threshold=threshold, n_classes=n_classes)
    out["metrics"] = {k: float(x) for k, x in values.items() if k != "threshold"}
    return out


def _read_rows(path: Path, positions: np.ndarray, read_chunks: Any | None) -> pd.DataFrame:
    """Rows of the batch file at ``positions`` (its data rows counted from 0), read as scoring read them."""
    wanted, parts, n_read = np.sort(positions), [], 0
    chunks = read_chunks(path) if read_chunks is not None else iter([load_dataset_file(path)])
    for chunk in chunks:
        chunk.index = pd.RangeIndex(n_read, n_read + len(chunk))
        n_read += len(chunk)
        hits = wanted[(wanted >= chunk.index.start) & (wanted < n_read)]
        if len(hits):
            parts.append(chunk.loc[hits])
    return pd.concat(parts) if parts else pd.DataFrame()


def labelled_rows(join: LabelJoin, target: str, read_chunks: Any | None = None) -> dict[str, pd.DataFrame]:
    """Per batch md5: the batch's raw rows that got a label, with the label as column ``target``.

    ``read_chunks(path)`` yields the batch in chunks as scoring read it (the contract's reading
    options); without it the file is read whole. A batch file that is gone is left out.
    """
    out = {}
    for md5, rows in join.joined.groupby("batch_md5", sort=True):
        path = Path(str(rows["batch_path"].iloc[0]))
        if not path.is_file():
            continue
        raw = _read_rows(path, rows["batch_row"].to_numpy(dtype=np.int64), read_chunks)
        if raw.empty:
            continue
        actual = rows.set_index("batch_row")[ACTUAL]
        raw = raw.drop(columns=[target], errors="ignore")
        out[str(md5)] = raw.assign(**{target: actual.reindex(raw.index).to_numpy()}).rename_axis("batch_row")
    return out


def labelled_path(root: Path, md5: str) -> Path:
    """Where the labelled rows of the batch with ``md5`` are kept."""
    return Path(root) / LABELLED_DIR / f"{md5}.parquet"


def save_labelled(root: Path, md5: str, rows: pd.DataFrame) -> Path:
    """``<root>/monitoring/labelled/<md5>.parquet``; labels that arrive in parts add to what is there
    (a row labelled again keeps its newest label)."""
    path = labelled_path(root, md5)
    if path.is_file():
        earlier = pd.read_parquet(path)
        if "batch_row" in earlier.columns:
            earlier = earlier.set_index("batch_row")
        rows = pd.concat([earlier, rows])
        rows = rows[~rows.index.duplicated(keep="last")].sort_index()
    write_parquet(rows.reset_index(), path)  # batch_row kept as a column: which rows of the batch these are
    return path


def batch_md5(batch: str, folder: Path) -> str | None:
    """The md5 of a batch named by an alarm: an md5 as is, else the md5 the scorings in ``folder``
    recorded for that path, else the file's own md5; None for served traffic or a file that is gone."""
    from components.data.dataset import file_md5

    batch = batch.strip()
    if len(batch) == 32 and all(ch in "0123456789abcdef" for ch in batch):
        return batch
    if not batch or batch.startswith("served:"):
        return None
    for path in sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else []:
        try:
            recorded = json.loads(path.read_text(encoding="utf-8")).get("batch") or {}
        except (OSError, ValueError, AttributeError):
            continue
        if recorded.get("path") == batch and recorded.get("md5"):
            return str(recorded["md5"])
    return file_md5(batch) if Path(batch).is_file() else None


def combine_with_labelled(reference: pd.DataFrame, labelled: list[pd.DataFrame]) -> pd.DataFrame:
    """``reference`` (training data) followed by the ``labelled`` rows, in the reference's columns and
    types where a value converts (a CSV's "1" as the reference's integer 1); ``batch_row`` dropped."""
    parts = [reference]
    for rows in labelled:
        rows = rows.drop(columns=["batch_row"], errors="ignore").reindex(columns=reference.columns)
        for column in rows.columns:
            if rows[column].dtype != reference[column].dtype:
                # one that does not convert is left as read: Parquet stores a type both sides fit
                with contextlib.suppress(TypeError, ValueError):
                    rows[column] = rows[column].astype(reference[column].dtype)
        parts.append(rows)
    return pd.concat(parts, ignore_index=True)
