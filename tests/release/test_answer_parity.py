"""Infra validation's service-vs-pyfunc comparison per task (served for real: tests/serving/test_served_tasks.py)."""

import math

import pandas as pd
import pytest

from components.release.answer_parity import Comparison, compare_predictions, parity_problems, reference_task


def _binary():
    expected = pd.DataFrame({"label": [0, 1, 1], "probability": [0.1, 0.9, 0.8]})
    served = [
        {"label": y, "probability": p, "probabilities": {"0": 1 - p, "1": p}, "model_version": "1"}
        for y, p in zip([0, 1, 1], [0.1, 0.9, 0.8], strict=True)
    ]
    return expected, served


def _multiclass():
    expected = pd.DataFrame(
        {
            "label": ["b", "a"],
            "probability": [0.5, 0.7],
            "proba_a": [0.2, 0.7],
            "proba_b": [0.5, 0.2],
            "proba_c": [0.3, 0.1],
        }
    )
    served = [
        {"label": "b", "probability": 0.5, "probabilities": {"a": 0.2, "b": 0.5, "c": 0.3}, "model_version": "1"},
        {"label": "a", "probability": 0.7, "probabilities": {"a": 0.7, "b": 0.2, "c": 0.1}, "model_version": "1"},
    ]
    return expected, served


def test_the_task_is_read_from_the_reference_frame():
    assert reference_task(_binary()[0]) == "binary"
    assert reference_task(_multiclass()[0]) == "multiclass"
    assert reference_task(pd.DataFrame({"value": [1.0]})) == "regression"
    with pytest.raises(ValueError, match=r"\['score'\]"):
        reference_task(pd.DataFrame({"score": [1.0]}))


def test_binary_answers_that_agree_pass_and_a_changed_label_is_named():
    expected, served = _binary()
    assert compare_predictions(expected, served) == Comparison(0, 0.0, None)
    tampered = [served[0], {**served[1], "label": 0}, served[2]]
    result = compare_predictions(expected, tampered, where="batch row")
    assert result.label_mismatches == 1
    assert result.first == "batch row 1: label 0 served, 1 by the reference pyfunc"


def test_binary_probabilities_object_is_checked_too():
    expected, served = _binary()
    tampered = [served[0], served[1], {**served[2], "probabilities": {"0": 0.5, "1": 0.8}}]
    result = compare_predictions(expected, tampered)
    assert result.label_mismatches == 0 and result.max_diff == pytest.approx(0.3)
    assert result.first.startswith("row 2: probabilities[negative class] 0.5 served, 0.19999")


def test_multiclass_compares_every_class_probability_by_name():
    expected, served = _multiclass()
    assert compare_predictions(expected, served) == Comparison(0, 0.0, None)
    tampered = [served[0], {**served[1], "probabilities": {"a": 0.7, "b": 0.2, "c": 0.1 + 1e-3}}]
    result = compare_predictions(expected, tampered)
    assert result.label_mismatches == 0 and result.max_diff == pytest.approx(1e-3)
    assert result.first == "row 1: probabilities['c'] 0.101 served, 0.1 by the reference pyfunc"
    missing = [served[0], {**served[1], "probabilities": {"a": 0.7, "b": 0.2}}]  # a class left out
    assert compare_predictions(expected, missing).max_diff == math.inf


def test_regression_tolerance_grows_with_the_value():
    expected = pd.DataFrame({"value": [0.5, 2e6]})
    close = [{"value": 0.5 + 5e-7}, {"value": 2e6 + 1.0}]  # 1.0 on 2e6 is 5e-7 of it
    result = compare_predictions(expected, close)
    assert result.first is None and result.max_diff < 1e-6
    far = [{"value": 0.5 + 2e-6}, {"value": 2e6}]
    result = compare_predictions(expected, far, where="single-record request, row")
    assert result.first.startswith("single-record request, row 0: value 0.500002 served, 0.5 by the reference")
    assert compare_predictions(expected, [{"value": None}, {"value": "x"}]).max_diff == math.inf


def test_a_lost_answer_fails_everything():
    expected, served = _binary()
    result = compare_predictions(expected, served[:2])
    assert result == Comparison(3, math.inf, "2 answers for 3 rows")


def test_problems_say_what_differs_and_where():
    ok = Comparison(0, 0.0)
    assert parity_problems("multiclass", ok, ok, 1e-6) == []
    labels = Comparison(2, 0.5, "row 4: label 'a' served, 'b' by the reference pyfunc")
    assert parity_problems("multiclass", ok, labels, 1e-6) == [
        "2 labels differ from the reference pyfunc",
        "probabilities differ by up to 0.5 (> 1e-06)",
        "first difference: row 4: label 'a' served, 'b' by the reference pyfunc",
    ]
    values = Comparison(0, 0.01, "row 0: value 1.01 served, 1.0 by the reference pyfunc")
    assert parity_problems("regression", values, ok, 1e-6) == [
        "values differ by up to 0.01 x max(1, |value|) (> 1e-06)",
        "first difference: row 0: value 1.01 served, 1.0 by the reference pyfunc",
    ]
