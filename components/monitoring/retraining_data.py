"""What a drift-triggered retraining trains on: the champion's training data plus labelled batches.

A `mlops.model.drift` alarm names a batch; `mlops monitor --labels` keeps the labelled rows of a
batch as ``monitoring/labelled/<batch md5>.parquet``. When such rows exist and the champion was not
trained on them yet (``TAG_LABELLED_BATCHES`` on its version), the retraining data is the
champion's own training data (by its dataset md5) plus those rows; otherwise the current data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from components import vocabulary as v
from components.data import dataset as data_mod

# model-version tag: md5s of the batches whose labelled rows the version trained on
TAG_LABELLED_BATCHES = "retraining.labelled_batches"


def reference_file(root: Path, champion: dict[str, Any] | None, dataset: Path) -> tuple[Path, str]:
    """The champion's training data (its dataset md5, in the DVC cache or at ``data.path``), and a note;
    the current ``data.path`` when that version of the data is not here."""
    tags = (champion or {}).get("tags") or {}
    md5 = tags.get(v.TAG_DATASET_MD5)
    if md5:
        cached = data_mod.find_in_dvc_cache(root, md5)
        if cached is not None:
            return cached, f"champion v{champion['version']}'s training data (md5 {md5}, from the DVC cache)"
        if dataset.is_file() and data_mod.file_md5(dataset) == md5:
            return dataset, f"champion v{champion['version']}'s training data (md5 {md5}, {dataset.name})"
        return dataset, f"the current {dataset.name} (champion's training data md5 {md5} is not here)"
    return dataset, f"the current {dataset.name} (no champion training data recorded)"


def drift_training_data(root: Path, drift_batch: str, champion: dict[str, Any] | None, dataset: Path,
                        stage_dir: Path) -> dict[str, Any]:  # fmt: skip
    """What a drift-triggered retraining trains on: ``{"staged", "md5s", "note"}``; ``staged`` is None
    (train on the current data) when no batch of the alarm has labelled rows not yet trained on."""
    from components.monitoring import labels as lb

    seen = set(filter(None, ((champion or {}).get("tags") or {}).get(TAG_LABELLED_BATCHES, "").split(",")))
    found, notes = [], []
    for batch in filter(None, (b.strip() for b in drift_batch.split(","))):
        md5 = lb.batch_md5(batch, root / "predictions")
        path = lb.labelled_path(root, md5) if md5 else None
        if md5 is None or not path.is_file():
            notes.append(f"no labelled rows for {batch} yet")
        elif md5 in seen:
            notes.append(f"the labelled rows of {batch} are already in the champion's training data")
        else:
            found.append((batch, md5, path))
    if not found:
        return {"staged": None, "md5s": [], "note": f"the current data ({'; '.join(notes) or 'no batch named'})"}
    reference, ref_note = reference_file(root, champion, dataset)
    labelled = [pd.read_parquet(path) for _, _, path in found]
    combined = lb.combine_with_labelled(data_mod.load_dataset_file(reference), labelled)
    staged = data_mod.write_parquet(combined, stage_dir / dataset.name)
    parts = ", ".join(f"{len(rows)} labelled rows of {batch} (md5 {md5[:12]})"
                      for (batch, md5, _), rows in zip(found, labelled, strict=True))  # fmt: skip
    note = f"{ref_note}, {len(combined) - sum(map(len, labelled))} rows, plus {parts}: {len(combined)} rows"
    return {"staged": staged, "md5s": sorted(seen | {md5 for _, md5, _ in found}),
            "note": note + (f" ({'; '.join(notes)})" if notes else "")}  # fmt: skip
