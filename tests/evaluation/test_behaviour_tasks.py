"""Behaviour tests of multiclass and regression models, and binary golden rows given as class labels."""

import numpy as np
import pandas as pd
import pytest

from components.evaluation.behaviour import run_behaviour_tests

CLASSES = ["high", "low", "mid"]  # sorted, as a model's classes are


def multiclass(frame: pd.DataFrame) -> np.ndarray:
    """x < 0 is low, x in [0, 2) mid, x >= 2 high: P(high) rises with x, P(low) falls; noise is ignored."""
    x = frame["x"].to_numpy(dtype=float)
    logits = np.column_stack([3 * (x - 2), -3 * x, np.full(len(x), 0.0)])
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def regression(frame: pd.DataFrame) -> np.ndarray:
    """10 x + 0.01 noise: shifting noise moves the value a little, shifting x a lot."""
    return 10 * frame["x"].to_numpy(dtype=float) + 0.01 * frame["noise"].to_numpy(dtype=float)


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(1.0, 2.0, 300), "noise": rng.normal(size=300)})


def run_multiclass(frame, *specs):
    return run_behaviour_tests(multiclass, frame, list(specs), threshold=0.5, task="multiclass", classes=CLASSES)


def run_regression(frame, *specs):
    return run_behaviour_tests(regression, frame, list(specs), threshold=0.5, task="regression")


def test_multiclass_invariance_counts_label_flips(frame):
    calm, shaken = run_multiclass(
        frame,
        {"kind": "invariance", "column": "noise", "perturbation": {"scale": 5.0}, "max_flip_rate": 0.0},
        {"kind": "invariance", "column": "x", "perturbation": {"shift": 1.0}, "max_flip_rate": 0.05},
    )
    assert calm.passed and calm.numbers["flip_rate"] == 0.0
    assert not shaken.passed and shaken.numbers["flip_rate"] > 0.05 and "flip" in shaken.detail


def test_multiclass_directional_follows_the_named_class(frame):
    shift = {"kind": "directional", "column": "x", "delta": 0.5, "expect": "increase"}
    up, wrong = run_multiclass(
        frame, {**shift, "min_fraction": 1.0, "class": "high"}, {**shift, "min_fraction": 0.5, "class": "low"}
    )
    assert up.passed and "probability of class 'high'" in up.detail
    assert not wrong.passed and wrong.numbers["fraction"] < 0.5


def test_multiclass_golden_rows_take_class_labels(frame):
    good, bad = run_multiclass(
        frame,
        {
            "name": "clear",
            "kind": "golden",
            "rows": [{"x": 5.0}, {"x": -3.0}, {"x": 1.0}],
            "expected": ["high", "low", "mid"],
        },
        {"kind": "golden", "rows": [{"x": 5.0}], "expected": ["low"]},
    )
    assert good.passed and good.numbers["n_correct"] == 3 and good.numbers["min_margin"] > 0
    assert not bad.passed and "row 0: expected low got high" in bad.detail


def test_regression_invariance_uses_a_tolerance(frame):
    small, large, some = run_regression(
        frame,
        {"kind": "invariance", "column": "noise", "perturbation": {"shift": 1.0}, "tolerance": 0.05},
        {"kind": "invariance", "column": "x", "perturbation": {"shift": 0.1}, "tolerance": 0.5},
        {"kind": "invariance", "column": "x", "perturbation": {"replace": 1.0}, "tolerance": 5.0, "max_fraction": 0.9},
    )
    assert small.passed and small.numbers["max_abs_change"] == pytest.approx(0.01)
    assert not large.passed and large.numbers["fraction_over"] == 1.0 and "more than 0.5" in large.detail
    assert some.passed and 0 < some.numbers["fraction_over"] <= 0.9


def test_regression_directional_and_golden(frame):
    up, close, far = run_regression(
        frame,
        {"kind": "directional", "column": "x", "delta": 1.0, "expect": "increase", "min_fraction": 1.0},
        {"kind": "golden", "rows": [{"x": 1.0, "noise": 0.0}, {"x": -2.0, "noise": 0.0}], "expected": [10, -20.0],
         "tolerance": 0.001},
        {"kind": "golden", "rows": [{"x": 1.0, "noise": 0.0}], "expected": [12.0], "tolerance": 1.0},
    )  # fmt: skip
    assert up.passed and "prediction moves to increase" in up.detail and up.numbers["mean_change"] == pytest.approx(10)
    assert close.passed and close.numbers["max_abs_error"] < 1e-9
    assert not far.passed and "expected 12 got 10" in far.detail


def test_binary_golden_rows_take_class_labels_or_zero_one():
    frame = pd.DataFrame({"x": [0.0, 1.0]})

    def binary(f):
        return 1 / (1 + np.exp(-(f["x"].to_numpy(dtype=float) - 1.0)))

    labels = {"kind": "golden", "rows": [{"x": 6.0}, {"x": -4.0}], "expected": ["yes", "no"]}
    zero_one = {"kind": "golden", "rows": [{"x": 6.0}, {"x": -4.0}], "expected": [1, 1]}
    by_label, by_index = run_behaviour_tests(binary, frame, [labels, zero_one], threshold=0.5, classes=["no", "yes"])
    assert by_label.passed
    assert not by_index.passed and "row 1: expected 1 got 0" in by_index.detail  # reported as given: 0/1


def test_spec_errors_name_the_test_and_the_key(frame):
    called = []

    def recording(f):
        called.append(1)
        return regression(f)

    cases = [
        ({"name": "t1", "kind": "invariance", "column": "x", "perturbation": {"shift": 1}, "max_flip_rate": 0},
         "regression", r"t1 \(invariance, regression model\): missing key\(s\) tolerance"),
        ({"name": "t2", "kind": "golden", "rows": [{"x": 1}], "expected": [3.0]},
         "regression", r"t2 \(golden, regression model\): missing key\(s\) tolerance"),
        ({"name": "t3", "kind": "golden", "rows": [{"x": 1}], "expected": ["big"], "tolerance": 1},
         "regression", "t3 .*expected must hold numbers"),
        ({"name": "t4", "kind": "directional", "column": "x", "delta": 1, "expect": "increase", "min_fraction": 1},
         "multiclass", r"t4 \(directional, multiclass model\): missing key\(s\) class"),
        ({"name": "t5", "kind": "directional", "column": "x", "delta": 1, "expect": "increase", "min_fraction": 1,
          "class": "medium"}, "multiclass", "t5 .*class 'medium' is not one of the model's classes"),
        ({"name": "t6", "kind": "golden", "rows": [{"x": 1}], "expected": ["medium"]},
         "multiclass", "t6 .*expected holds \\['medium'\\]"),
        ({"name": "t7", "kind": "invariance", "column": "x", "perturbation": {"shift": 1}, "tolerance": -1},
         "regression", "t7 .*tolerance must be a number >= 0"),
    ]  # fmt: skip
    for spec, task, message in cases:
        with pytest.raises(ValueError, match=message):
            run_behaviour_tests(recording, frame, [spec], threshold=0.5, task=task, classes=CLASSES)
    assert not called  # every spec is refused before the model runs
