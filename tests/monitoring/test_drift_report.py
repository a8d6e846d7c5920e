"""The drift report of a batch: dataset drift against the threshold, prediction drift, sampling, the
JSON and HTML files (escaped, never overwritten), the markdown table, and the bounded row sample
that is the same whatever the chunking."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from components.data.contract_inference import infer_contract
from components.monitoring.batch_monitor import RowSample, drift_columns, row_keys
from components.monitoring.drift_report import build_drift_report, drift_markdown, write_drift_report
from tests.messy import messy_frame

COLUMNS = {"gender": "categorical", "Contract": "categorical", "PaymentMethod": "categorical",
           "PaperlessBilling": "categorical", "tenure": "numeric", "MonthlyCharges": "numeric",
           "TotalCharges": "numeric", "SupportTickets": "numeric"}  # fmt: skip
CONTEXT = {"model": "churn", "version": "4", "batch": "incoming/2026-12-01.csv", "batch_md5": "ab" * 16}


def report_of(reference, current, *, ref_pred=None, cur_pred=None, drift_share=0.5, **kwargs):
    return build_drift_report(reference, current, COLUMNS, reference_predictions=ref_pred,
                              current_predictions=cur_pred, drift_share=drift_share, context=CONTEXT,
                              **kwargs)  # fmt: skip


def test_dataset_drift_is_a_share_of_drifted_columns_over_the_threshold():
    reference, current = messy_frame(3000, seed=1), messy_frame(3000, seed=2)
    same = report_of(reference, current)
    assert (same["n_columns"], same["n_drifted"], same["share_drifted"], same["dataset_drift"]) == (8, 0, 0.0, False)
    assert same["verdict"].startswith("no dataset drift: 0 of 8 columns drifted")
    shifted = current.assign(MonthlyCharges=current["MonthlyCharges"] * 1.4, tenure=current["tenure"] + 12,
                             TotalCharges=current["TotalCharges"] * 1.5, Contract="Month-to-month")  # fmt: skip
    report = report_of(reference, shifted)
    assert report["drifted"] == ["Contract", "tenure", "MonthlyCharges", "TotalCharges"]
    assert report["share_drifted"] == 0.5 and report["dataset_drift"] is False  # not over 0.5: strictly greater
    assert report_of(reference, shifted, drift_share=0.4)["dataset_drift"] is True
    assert report["context"] == CONTEXT and report["drift_share"] == 0.5
    json.dumps(report, allow_nan=False)


def test_prediction_drift_is_detected_when_the_predictions_shift():
    rng = np.random.default_rng(0)
    frame = messy_frame(2000, seed=1)
    labels = pd.Series(rng.choice(["Yes", "No"], 2000, p=[0.3, 0.7]))
    stable = report_of(frame, frame, ref_pred=labels, cur_pred=pd.Series(rng.choice(["Yes", "No"], 2000, p=[0.3, 0.7])))
    moved = report_of(frame, frame, ref_pred=labels, cur_pred=pd.Series(rng.choice(["Yes", "No"], 2000, p=[0.6, 0.4])))
    assert stable["prediction"]["kind"] == "categorical" and not stable["prediction"]["drifted"]
    assert moved["prediction"]["drifted"] and moved["verdict"].endswith("predictions drifted")
    assert moved["prediction"]["statistic"] == "jensen_shannon" and moved["n_drifted"] == 0  # not a column
    values = pd.Series(rng.normal(1000, 50, 400))  # a regression's values: numeric, 400 reference rows -> KS
    higher = report_of(frame, frame, ref_pred=values, cur_pred=pd.Series(rng.normal(1040, 50, 400)))
    assert higher["prediction"]["statistic"] == "ks_p_value" and higher["prediction"]["drifted"]
    assert report_of(frame, frame, ref_pred=labels)["prediction"] is None  # one side only: not compared


def test_big_inputs_are_compared_on_a_seeded_sample_and_missing_columns_are_skipped():
    reference, current = messy_frame(3000, seed=1), messy_frame(3000, seed=2).drop(columns=["gender"])
    report = report_of(reference, current, max_rows=1000)
    assert report["sample"] == {"max_rows": 1000, "seed": 0, "reference_rows": 3000, "reference_compared": 1000,
                                "current_rows": 3000, "current_compared": 1000}  # fmt: skip
    assert all(c["n_reference"] == 1000 for c in report["columns"])
    assert report["skipped"] == [{"column": "gender", "kind": "categorical", "reason": "not in the current data"}]
    assert report["n_columns"] == 7
    assert report_of(reference, current, max_rows=1000) == report  # seeded: the same report again
    with pytest.raises(ValueError, match="amount='text'"):
        build_drift_report(reference, current, {"amount": "text"}, reference_predictions=None,
                           current_predictions=None, drift_share=0.5, context={})  # fmt: skip


def test_the_report_is_written_as_json_and_escaped_html_and_never_overwritten(tmp_path):
    reference = messy_frame(500, seed=1).rename(columns={"Contract": "<script>alert(1)</script>"})
    current = reference.assign(tenure=reference["tenure"] + 30)
    columns = {"<script>alert(1)</script>": "categorical", "tenure": "numeric"}
    report = build_drift_report(reference, current, columns, reference_predictions=None, current_predictions=None,
                                drift_share=0.3, context=CONTEXT | {"batch_name": "a<b>.csv"})  # fmt: skip
    html_path, json_path = write_drift_report(report, tmp_path / "out", "a-b-20261201T000000Z")
    assert html_path.name == "a-b-20261201T000000Z.drift.html" and json_path.name == "a-b-20261201T000000Z.drift.json"
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(report))
    page = html_path.read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "a&lt;b&gt;.csv" in page
    for text in ("incoming/2026-12-01.csv", CONTEXT["batch_md5"], "ks_p_value", "dataset drift", "50.00%", "30.00%"):
        assert text in page
    with pytest.raises(FileExistsError):
        write_drift_report(report, tmp_path / "out", "a-b-20261201T000000Z")
    markdown = drift_markdown(report)
    assert "| tenure | numeric | ks_p_value |" in markdown and "**yes**" in markdown
    assert markdown.count("\n| ") == 4  # header, rule, two columns


def test_drift_columns_are_the_features_by_kind_without_target_keys_or_ids():
    frame = messy_frame(200, seed=0)
    drafted = infer_contract(frame, "Churn", name="churn", task="binary")
    contract = dataclasses.replace(drafted, keys=["customerID"])
    kinds = drift_columns(contract)
    assert "Churn" not in kinds and "customerID" not in kinds
    assert kinds["tenure"] == kinds["MonthlyCharges"] == "numeric"
    assert kinds["Contract"] == kinds["PaperlessBilling"] == "categorical"


def _sample_in(chunks, frame, max_rows):
    sample = RowSample(max_rows)
    for part in chunks:
        sample.add(frame.iloc[part], frame["prediction"].iloc[part])
    return sample


def test_the_row_sample_is_bounded_uniform_and_the_same_whatever_the_chunking():
    n = 20_000
    frame = pd.DataFrame({"x": np.arange(n, dtype=float), "prediction": np.arange(n) % 3})
    whole = _sample_in([np.arange(n)], frame, 500)
    small = _sample_in(np.array_split(np.arange(n), 37), frame, 500)
    reversed_ = _sample_in(np.array_split(np.arange(n), 7)[::-1], frame, 500)  # chunks out of order, as workers finish
    pd.testing.assert_frame_equal(small.rows, whole.rows)
    pd.testing.assert_frame_equal(reversed_.rows, whole.rows)
    pd.testing.assert_series_equal(small.predictions, whole.predictions)
    assert len(whole.rows) == 500 and whole.n_seen == n and whole.rows.index.is_monotonic_increasing
    assert (whole.predictions.to_numpy() == whole.rows["x"].to_numpy() % 3).all()  # rows and answers stay paired
    assert 0.4 < whole.rows["x"].mean() / n < 0.6  # spread over the batch, not its head
    keys = row_keys(np.arange(100_000))
    assert keys.min() >= 0 and keys.max() < 1 and abs(keys.mean() - 0.5) < 0.01
    assert len(_sample_in([np.arange(10)], frame, 500).rows) == 10  # fewer rows than the bound: all of them
