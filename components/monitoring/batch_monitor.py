"""Monitoring of a scored batch: a bounded sample of its rows and predictions, and its drift report.

``score_batch`` feeds every scored chunk to a :class:`RowSample`; at the end,
:func:`batch_drift_report` compares the sample with the champion's training data (features by
the contract's column kinds, predictions against the model's own predictions on a sample of that
data) and writes ``<base>.drift.html`` and ``<base>.drift.json`` beside the predictions.

The sample is the ``max_rows`` rows with the smallest keys, a key being a hash of the row's
position in the batch: the same rows whatever the chunk size, the chunk order or the engine that
scored them, so a batch always gets the same report.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.data.contract import Contract
from components.model.tasks import REGRESSION
from components.monitoring.drift_report import MAX_ROWS, SEED, build_drift_report, write_drift_report
from components.monitoring.drift_stats import CATEGORICAL, NUMERIC
from components.monitoring.reference_scores import reference_predictions

Predict = Callable[[pd.DataFrame], pd.DataFrame]


def row_keys(positions: np.ndarray, seed: int = SEED) -> np.ndarray:
    """A uniform number in [0, 1) per batch row position (SplitMix64 of position and seed)."""
    with np.errstate(over="ignore"):  # the mixing wraps around 2**64 on purpose
        z = positions.astype(np.uint64) + np.uint64(seed + 1) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


class RowSample:
    """A uniform sample of at most ``max_rows`` rows of a batch with their predictions.

    Memory holds the sample and one chunk's keys, whatever the batch size. Rows are indexed by
    their position in the batch (as ``score_batch`` indexes chunks).
    """

    def __init__(self, max_rows: int = MAX_ROWS, seed: int = SEED) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows}")
        self.max_rows, self.seed, self.n_seen = max_rows, seed, 0
        self._rows: pd.DataFrame | None = None
        self._predictions: pd.Series | None = None
        self._keys = np.empty(0)

    def add(self, rows: pd.DataFrame, predictions: pd.Series) -> None:
        """Offer a chunk's rows and their predictions (same index) to the sample."""
        self.n_seen += len(rows)
        keys = row_keys(rows.index.to_numpy(), self.seed)
        if len(self._keys) >= self.max_rows:  # full: only keys under the largest kept one can enter
            enter = keys < self._keys.max()
            rows, predictions, keys = rows[enter], predictions[enter], keys[enter]
        if not len(rows):
            return
        if len(rows) > self.max_rows:  # only a chunk's smallest keys can make the sample: copy no more
            first = np.sort(np.argpartition(keys, self.max_rows)[: self.max_rows])
            rows, predictions, keys = rows.iloc[first], predictions.iloc[first], keys[first]
        if self._rows is not None:
            rows = pd.concat([self._rows, rows])
            predictions = pd.concat([self._predictions, predictions])
            keys = np.concatenate([self._keys, keys])
        if len(rows) > self.max_rows:
            keep = np.argpartition(keys, self.max_rows)[: self.max_rows]
            keep = keep[np.argsort(rows.index.to_numpy()[keep], kind="stable")]  # batch order, for any chunk order
            rows, predictions, keys = rows.iloc[keep], predictions.iloc[keep], keys[keep]
        elif not rows.index.is_monotonic_increasing:
            order = np.argsort(rows.index.to_numpy(), kind="stable")
            rows, predictions, keys = rows.iloc[order], predictions.iloc[order], keys[order]
        self._rows, self._predictions, self._keys = rows, predictions, keys

    @property
    def rows(self) -> pd.DataFrame | None:
        return self._rows

    @property
    def predictions(self) -> pd.Series | None:
        return self._predictions


def drift_columns(contract: Contract) -> dict[str, str]:
    """Columns a drift report compares, with their kind: the contract's features (not the target,
    keys or ``feature: false`` id columns); float and int are numeric, category/string/bool categorical."""
    keys = set(contract.keys)
    return {
        name: NUMERIC if contract.column(name).numeric else CATEGORICAL
        for name in contract.feature_columns()
        if name not in keys
    }


def summary(report: dict[str, Any] | None, reference_note: str | None, files: tuple[Path, Path] | None,
            skipped: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The metadata's ``drift`` section: the verdict, the shares, what drifted and where the report is."""
    if report is None:
        return {"reference": reference_note, "verdict": f"skipped: {skipped}", "report": None}
    pred = report["prediction"]
    return {
        "reference": reference_note,
        "verdict": report["verdict"],
        "share_drifted": report["share_drifted"],
        "drift_share": report["drift_share"],
        "dataset_drift": report["dataset_drift"],
        "drifted": report["drifted"],
        "n_columns": report["n_columns"],
        "prediction_drift": None if pred is None or pred["value"] is None else pred["drifted"],
        "prediction": None if pred is None else {k: pred[k] for k in ("statistic", "value", "threshold", "drifted")},
        "report": None if files is None else {"html": str(files[0]), "json": str(files[1])},
        "sample": report["sample"],
    }


def batch_drift_report(
    base: Path,
    *,
    sample: RowSample,
    reference: pd.DataFrame | None,
    reference_note: str,
    contract: Contract,
    predict: Predict,
    model: dict[str, Any],
    batch: dict[str, Any],
    drift_share: float,
    rejected: str | None = None,
    cache: Path | None = None,
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The batch's drift report written beside ``base`` (``<base>.drift.html``, ``.drift.json``) and
    the metadata's summary of it; (None, a summary saying why) when there is nothing to compare.

    ``rejected``: why the batch was rejected; the report then covers the rows scored before that.
    ``cache``: where the model's predictions on its reference sample are kept between batches when
    the version has none stored (:mod:`components.monitoring.reference_scores`).
    """
    if reference is None:
        return None, summary(None, None, None, reference_note.removeprefix("skipped: "))
    if sample.rows is None:
        why = f"batch rejected ({rejected}) before any row was scored" if rejected else "no row was scored"
        return None, summary(None, reference_note, None, why)
    # A registered version (a run id) is the same model in every batch: its predictions on the reference were
    # stored with it at registration, or are cached by the first batch.
    run_id = model.get("model_run_id")
    model_key = f"{model.get('uri')} {run_id} {model.get('scorer')}" if run_id else None
    ref_rows, ref_pred, pred_note = reference_predictions(reference, predict, contract.target, model["task"],
                                                          cache=cache, model_key=model_key,
                                                          model_run_id=run_id)  # fmt: skip
    context = {
        "batch_name": Path(batch["path"]).name,
        "model": model.get("name"),
        "version": model.get("version"),
        "model_uri": model.get("uri"),
        "alias": model.get("alias"),
        "batch": batch["path"],
        "batch_md5": batch["md5"],
        "reference": reference_note,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "status": "rejected: " + rejected if rejected else "scored",
        "rows_scored": sample.n_seen,
        "sampling": f"a uniform sample of {len(sample.rows)} of the {sample.n_seen} scored rows "
        f"(at most {sample.max_rows}, seed {sample.seed}, by row position: the same whatever the chunking)",
    }
    if rejected:
        context["note"] = "the batch was rejected: no predictions were published; this compares the rows scored first"
    if pred_note:
        context["prediction_note"] = pred_note
    report = build_drift_report(ref_rows, sample.rows, drift_columns(contract), reference_predictions=ref_pred,
                                current_predictions=sample.predictions if ref_pred is not None else None,
                                drift_share=drift_share, context=context,
                                prediction_kind=NUMERIC if model["task"] == REGRESSION else CATEGORICAL)  # fmt: skip
    files = write_drift_report(report, base.parent, base.name)
    return report, summary(report, reference_note, files)
