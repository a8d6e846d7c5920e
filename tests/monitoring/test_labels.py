"""Late labels: the join (missing, extra and repeated ids), realized metrics per task, the labelled rows."""

import json

import numpy as np
import pandas as pd
import pytest

from components.data.contract import DataReadError
from components.monitoring import labels as lb
from tests.data.task_frames import diabetes_frame, wine_frame


def write_scoring(folder, stem, *, ids, created, md5, batch_path, model="churn", version="1", extra_cols=None):
    """A predictions file and its metadata as `mlops predict` writes them."""
    frame = pd.DataFrame({"inference_id": ids, "batch_row": np.arange(len(ids)), "model_version": version,
                          "model_uri": f"models:/{model}/{version}"})  # fmt: skip
    for name, values in (extra_cols or {}).items():
        frame[name] = values
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / f"{stem}.parquet", index=False)
    meta = {"status": "scored", "created": created, "batch": {"path": str(batch_path), "md5": md5},
            "model": {"name": model, "version": version}}  # fmt: skip
    (folder / f"{stem}.json").write_text(json.dumps(meta))


def test_labels_join_the_newest_scoring_and_count_missing_extra_and_repeated(tmp_path):
    """Customer keys scored on two nights: c2 and c3 twice. Labels for c2, c3 (one repeated), c9 (never
    scored), and a blank label. Another model's scoring and a file without metadata are ignored."""
    folder = tmp_path / "predictions"
    write_scoring(folder, "night1", ids=["c1", "c2", "c3"], created="2026-12-01T05:00:00+00:00", md5="a" * 32,
                  batch_path="in/1.csv", extra_cols={"label": ["no", "no", "yes"]})  # fmt: skip
    write_scoring(folder, "night2", ids=["c2", "c3", "c4", "c5"], created="2026-12-02T05:00:00+00:00", md5="b" * 32,
                  batch_path="in/2.csv", extra_cols={"label": ["yes", "no", "no", "yes"]})  # fmt: skip
    write_scoring(folder, "other", ids=["c2"], created="2026-12-03T05:00:00+00:00", md5="c" * 32,
                  batch_path="in/3.csv", model="fraud", extra_cols={"label": ["yes"]})  # fmt: skip
    pd.DataFrame({"inference_id": ["c2"]}).to_parquet(folder / "orphan.parquet")
    (tmp_path / "labels.csv").write_text("inference_id,churned\nc2,yes\nc3,no\nc3,yes\nc9,no\nc4,\n")

    labels = lb.read_labels(tmp_path / "labels.csv", "churned")
    assert labels.to_dict("list") == {"inference_id": ["c2", "c3", "c3", "c9"], "actual": ["yes", "no", "yes", "no"]}
    files = lb.scorings(folder, "churn")
    assert [p.stem for p, _ in files] == ["night1", "night2"]
    predictions, sizes = lb.read_predictions(files, set(labels["inference_id"]))
    join = lb.join_labels(labels, predictions, sizes)

    joined = join.joined.set_index("inference_id")
    assert sorted(joined.index) == ["c2", "c3"]
    assert joined.loc["c2", "batch_md5"] == "b" * 32 and joined.loc["c2", "label"] == "yes"  # the newest scoring
    assert joined.loc["c3", "actual"] == "yes"  # the last label of a repeated id
    assert (join.n_labels, join.n_matched, join.missing, join.missing_examples) == (3, 2, 1, ["c9"])
    assert join.repeated == 2 and join.duplicate_labels == 1
    assert join.extra == 1 + 2  # c1 (night 1) and c4, c5 (night 2): the files the labels reached


def test_nothing_joins_without_an_error(tmp_path):
    labels = pd.DataFrame({"inference_id": ["x"], "actual": [1]})
    predictions, sizes = lb.read_predictions(lb.scorings(tmp_path / "none", "churn"), {"x"})
    join = lb.join_labels(labels, predictions, sizes)
    assert join.n_matched == 0 and join.missing == 1 and join.extra == 0


def test_a_labels_file_accepts_label_or_value_and_names_what_it_lacks(tmp_path):
    pd.DataFrame({"inference_id": [1, 2], "value": [3.5, 4.0]}).to_parquet(tmp_path / "l.parquet")
    frame = lb.read_labels(tmp_path / "l.parquet", "progression")
    assert frame["inference_id"].tolist() == ["1", "2"] and frame["actual"].tolist() == [3.5, 4.0]
    (tmp_path / "bad.csv").write_text("id,y\n1,2\n")
    with pytest.raises(DataReadError, match="inference_id and progression .or label/value.; it has id, y"):
        lb.read_labels(tmp_path / "bad.csv", "progression")


def test_realized_binary_metrics_with_string_labels_and_an_unknown_label():
    rows = pd.DataFrame({"actual": ["malignant", "benign", "malignant", "benign", "unsure"],
                         "probability": [0.9, 0.2, 0.4, 0.6, 0.5]})  # fmt: skip
    result = lb.realized_metrics(rows, "binary", ["benign", "malignant"], threshold=0.5)
    assert result["n"] == 4 and result["unknown_labels"] == 1
    m = result["metrics"]
    assert m["accuracy"] == 0.5 and m["roc_auc"] == 0.75 and "threshold" not in m
    one_class = lb.realized_metrics(rows.head(1), "binary", ["benign", "malignant"])
    assert set(one_class["metrics"]) == {"accuracy", "f1", "log_loss", "brier"} and "one class" in one_class["note"]


def test_realized_binary_metrics_match_integer_classes_read_from_text():
    rows = pd.DataFrame({"actual": ["1", "0", "1.0"], "probability": [0.8, 0.3, 0.7]})
    assert lb.realized_metrics(rows, "binary", [0, 1])["metrics"]["accuracy"] == 1.0


def test_realized_multiclass_metrics_from_the_class_probabilities():
    wine = wine_frame().head(6)
    classes = ["barbera", "barolo", "grignolino"]
    proba = np.eye(3)[[1, 1, 2, 0, 0, 2]] * 0.8 + 0.2 / 3
    rows = pd.DataFrame({"actual": wine["cultivar"].tolist()} | {f"proba_{c}": proba[:, i] for i, c in
                                                                  enumerate(classes)})  # fmt: skip
    result = lb.realized_metrics(rows, "multiclass", classes)
    expected_hits = np.mean(np.array(classes)[proba.argmax(axis=1)] == wine["cultivar"].to_numpy())
    assert result["metrics"]["accuracy"] == pytest.approx(expected_hits)
    assert {"f1_macro", "log_loss"} <= set(result["metrics"])


def test_realized_regression_metrics_leave_out_labels_that_are_not_numbers():
    frame = diabetes_frame().head(5)
    rows = pd.DataFrame({"actual": [*frame["progression"].astype(str)[:4], "n/a"], "value": frame["progression"] + 10})
    result = lb.realized_metrics(rows, "regression", [])
    assert result["n"] == 4 and result["unknown_labels"] == 1
    assert result["metrics"]["rmse"] == pytest.approx(10.0) and result["metrics"]["mae"] == pytest.approx(10.0)


def test_labelled_rows_read_the_batch_back_by_row_and_add_to_earlier_labels(tmp_path):
    batch = diabetes_frame().drop(columns=["progression"]).head(8)
    batch.to_csv(tmp_path / "batch.csv", index=False)
    joined = pd.DataFrame({"inference_id": ["a", "b"], "batch_row": [6, 1], "batch_md5": "f" * 32,
                           "batch_path": str(tmp_path / "batch.csv"), "actual": [151.0, 75.0]})  # fmt: skip
    join = lb.LabelJoin(joined=joined, n_labels=2, missing=0, extra=0, repeated=0, duplicate_labels=0)
    [(md5, rows)] = lb.labelled_rows(join, "progression").items()
    assert md5 == "f" * 32 and list(rows.index) == [1, 6]
    assert rows.loc[6, "age"] == batch.loc[6, "age"] and rows.loc[6, "progression"] == 151.0
    path = lb.save_labelled(tmp_path, md5, rows)
    later = rows.loc[[6]].assign(progression=160.0)
    lb.save_labelled(tmp_path, md5, pd.concat([later, rows.loc[[1]].rename(index={1: 3})]))
    saved = pd.read_parquet(path)
    assert saved["batch_row"].tolist() == [1, 3, 6] and saved["progression"].tolist() == [75.0, 75.0, 160.0]
    assert path == tmp_path / "monitoring" / "labelled" / f"{md5}.parquet"


def test_retraining_data_is_the_reference_plus_labelled_rows_in_the_references_types():
    reference = diabetes_frame().head(4)
    labelled = diabetes_frame().tail(2).rename_axis("batch_row").reset_index()
    labelled["progression"] = labelled["progression"].astype(str)  # as a CSV of labels gives them
    labelled["extra column"] = 1
    combined = lb.combine_with_labelled(reference, [labelled.drop(columns=["bmi"])])
    assert list(combined.columns) == list(reference.columns) and len(combined) == 6
    assert combined["progression"].dtype == reference["progression"].dtype
    assert combined["bmi"].tail(2).isna().all()  # a column the batch lacked stays blank


def test_an_alarms_batch_is_found_by_md5_by_the_scorings_record_or_by_its_file(tmp_path):
    from components.data.dataset import file_md5

    (tmp_path / "b.csv").write_text("x\n1\n")
    write_scoring(tmp_path / "predictions", "s", ids=["a"], created="t", md5="e" * 32, batch_path="/gone/a.csv")
    assert lb.batch_md5("d" * 32, tmp_path / "predictions") == "d" * 32
    assert lb.batch_md5("/gone/a.csv", tmp_path / "predictions") == "e" * 32
    assert lb.batch_md5(str(tmp_path / "b.csv"), tmp_path / "predictions") == file_md5(tmp_path / "b.csv")
    assert lb.batch_md5("served:monitoring/served/m", tmp_path / "predictions") is None
    assert lb.batch_md5("/gone/b.csv", tmp_path / "predictions") is None
