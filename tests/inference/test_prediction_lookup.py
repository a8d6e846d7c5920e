"""Looking up an inference id among predictions files: every match, newest first, only the id column read
where the statistics cannot rule a row group out, and files of other models or unfinished ones left alone."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from components.inference import prediction_lookup as lookup
from components.inference.scoring import inference_ids

CLASSES = [">50K", "<=50K"]


def scored_frame(ids: list[str], version: str, model: str = "adult", seed: int = 0) -> pd.DataFrame:
    """What score_batch writes for a binary model: the id columns, then label and probability."""
    rng = np.random.default_rng(seed)
    proba = rng.random(len(ids)).round(4)
    return pd.DataFrame(
        {
            "inference_id": ids,
            "batch_row": np.arange(len(ids), dtype=np.int64),
            "model_version": version,
            "model_uri": f"models:/{model}/{version}",
            "label": np.where(proba >= 0.5, CLASSES[0], CLASSES[1]),
            "probability": proba,
        }
    )


def write_scoring(folder: Path, stem: str, frame: pd.DataFrame, *, created: str | None, model: str = "adult",
                  row_group_size: int = 50, md5: str = "f" * 32) -> Path:  # fmt: skip
    """A predictions file in row groups of ``row_group_size`` and (unless ``created`` is None) its metadata."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=row_group_size)
    if created is not None:
        version = str(frame["model_version"].iloc[0])
        meta = {"status": "scored", "created": created,
                "batch": {"path": f"/data/incoming/{stem}.parquet", "md5": md5, "chunk_rows": 100},
                "model": {"name": model, "version": version, "uri": f"models:/{model}/{version}"}}  # fmt: skip
        path.with_suffix(".json").write_text(json.dumps(meta))
    return path


def test_a_hashed_id_is_found_with_its_batch_row_prediction_and_version(tmp_path):
    md5 = "a" * 32
    ids = list(inference_ids(pd.DataFrame(index=pd.RangeIndex(0, 180)), [], md5))
    frame = scored_frame(ids, "3")
    path = write_scoring(tmp_path, "dec01", frame, created="2026-12-01T02:00:00+00:00", md5=md5)
    write_scoring(tmp_path, "dec02", scored_frame(list(inference_ids(frame, [], "b" * 32)), "3"),
                  created="2026-12-02T02:00:00+00:00")  # fmt: skip

    (match,) = lookup.find_inference_id(ids[123], tmp_path)

    assert (match.predictions, match.file_row, match.batch_row) == (path.resolve(), 123, 123)
    assert (match.batch_path, match.batch_md5) == ("/data/incoming/dec01.parquet", md5)
    assert (match.model_name, match.model_version, match.model_uri) == ("adult", "3", "models:/adult/3")
    assert match.scored_at == "2026-12-01T02:00:00+00:00" and match.metadata == path.with_suffix(".json").resolve()
    expected = frame.iloc[123]
    assert match.prediction == {"label": expected["label"], "probability": expected["probability"]}
    assert match.describe_prediction() == f"label {expected['label']!r}, probability {expected['probability']:.6g}"
    assert lookup.find_inference_id("0123456789abcdef", tmp_path) == []


def test_a_keyed_id_scored_in_several_batches_gives_every_match_newest_first(tmp_path):
    keys = [f"C{n:05d}" for n in range(200)]
    write_scoring(tmp_path, "nov30", scored_frame(keys, "2"), created="2026-11-30T02:00:00+00:00")
    write_scoring(tmp_path, "dec02", scored_frame(keys[::-1], "3", seed=1), created="2026-12-02T02:00:00+00:00")
    write_scoring(tmp_path, "dec01", scored_frame(keys[50:], "3", seed=2), created="2026-12-01T02:00:00+00:00")
    write_scoring(tmp_path, "dec01-other", scored_frame(keys, "1", model="churn"), model="churn",
                  created="2026-12-03T02:00:00+00:00")  # fmt: skip

    matches = lookup.find_inference_id("C00060", tmp_path)
    assert [(m.scored_at[:10], m.model_name, m.model_version, m.batch_row) for m in matches] == [
        ("2026-12-03", "churn", "1", 60),
        ("2026-12-02", "adult", "3", 139),
        ("2026-12-01", "adult", "3", 10),
        ("2026-11-30", "adult", "2", 60),
    ]
    assert [m.model_name for m in lookup.find_inference_id("C00060", tmp_path, model="adult")] == ["adult"] * 3
    assert lookup.find_inference_id("C00060", tmp_path, model="nope") == []


def test_only_the_id_column_is_read_and_row_groups_the_statistics_exclude_are_skipped(tmp_path, monkeypatch):
    keys = [f"C{n:05d}" for n in range(400)]  # sorted: each row group of 50 spans a narrow range of keys
    write_scoring(tmp_path, "dec01", scored_frame(keys, "3"), created="2026-12-01T02:00:00+00:00")
    reads: list[tuple[int, tuple[str, ...] | None]] = []
    original = pq.ParquetFile.read_row_group

    def spy(self, i, columns=None, **kwargs):
        reads.append((i, tuple(columns) if columns else None))
        return original(self, i, columns=columns, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    (match,) = lookup.find_inference_id("C00123", tmp_path)
    assert match.file_row == 123
    assert reads == [(2, ("inference_id",)), (2, None)]  # group 2 only; its other columns because it holds the id


def test_unfinished_files_are_ignored_and_a_file_without_metadata_still_answers(tmp_path):
    keys = [f"K{n}" for n in range(30)]
    lone = write_scoring(tmp_path, "lone", scored_frame(keys, "4", model="adult"), created=None)
    os.utime(lone, (1_700_000_000, 1_700_000_000))
    write_scoring(tmp_path / "tmp", "x", scored_frame(keys, "5"), created="2026-12-09T00:00:00+00:00")
    (tmp_path / "tmp" / "x.parquet").rename(tmp_path / "half.parquet.partial")
    (tmp_path / "broken.parquet").write_text("not parquet")

    (match,) = lookup.find_inference_id("K7", tmp_path)
    assert (match.model_name, match.model_version, match.metadata, match.batch_path) == ("adult", "4", None, None)
    assert match.scored_at == "2023-11-14T22:13:20+00:00"  # the file's time when no metadata says when
    assert lookup.find_inference_id("K7", tmp_path / "no-such-folder") == []


@pytest.mark.parametrize("uri, name", [("models:/adult/3", "adult"), ("models:/a/b/12", "a/b"), ("runs:/x/m", None)])
def test_the_model_name_comes_from_a_models_uri(uri, name):
    assert lookup.model_name_of(uri) == name
