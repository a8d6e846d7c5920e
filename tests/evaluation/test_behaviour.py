import numpy as np
import pandas as pd
import pytest

from components.evaluation.behaviour import BehaviourResult, run_behaviour_tests


def predict(frame: pd.DataFrame) -> np.ndarray:
    """Logistic of one column: p rises with x, ignores everything else."""
    return 1.0 / (1.0 + np.exp(-(frame["x"].to_numpy(dtype=float) - 1.0)))


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "x": rng.normal(1.0, 2.0, 200),
            "noise": rng.normal(size=200),
            "colour": rng.choice(["red", "blue"], 200),
        }
    )


def run(frame, *specs):
    return run_behaviour_tests(predict, frame, list(specs), threshold=0.5)


def test_invariance_pass_and_fail(frame):
    ok, replaced, bad = run(
        frame,
        {"kind": "invariance", "column": "noise", "perturbation": {"scale": 10.0}, "max_flip_rate": 0.0},
        {
            "kind": "invariance",
            "column": "colour",
            "perturbation": {"replace": "green"},
            "max_flip_rate": 0.0,
        },
        {"kind": "invariance", "column": "x", "perturbation": {"shift": 3.0}, "max_flip_rate": 0.05},
    )
    assert ok.passed and ok.numbers["flip_rate"] == 0.0 and ok.name == "invariance:noise"
    assert replaced.passed
    assert not bad.passed and bad.numbers["flip_rate"] > 0.05
    assert "flip" in bad.detail and "x shift 3.0" in bad.detail


def test_directional_pass_and_fail(frame):
    up, down = run(
        frame,
        {"kind": "directional", "column": "x", "delta": 0.5, "expect": "increase", "min_fraction": 1.0},
        {"kind": "directional", "column": "x", "delta": 0.5, "expect": "decrease", "min_fraction": 0.9},
    )
    assert up.passed and up.numbers["fraction"] == 1.0
    assert not down.passed and down.numbers["fraction"] < 0.9


def test_directional_counts_unchanged_as_agreeing(frame):
    (result,) = run(
        frame,
        {"kind": "directional", "column": "noise", "delta": 1.0, "expect": "decrease", "min_fraction": 1.0},
    )
    assert result.passed


def test_golden_pass_fail_and_filled_columns(frame):
    rows = [{"x": 6.0}, {"x": -4.0, "noise": 0.0, "colour": "red"}]
    good, bad = run(
        frame,
        {"name": "obvious", "kind": "golden", "rows": rows, "expected": [1, 0]},
        {"kind": "golden", "rows": rows, "expected": [0, 0]},
    )
    assert good.passed and good.name == "obvious" and good.numbers["n_correct"] == 2
    assert not bad.passed and "row 0: expected 0 got 1" in bad.detail


def test_errors_name_the_problem(frame):
    with pytest.raises(ValueError, match="unknown kind 'fuzz'"):
        run(frame, {"kind": "fuzz"})
    with pytest.raises(ValueError, match="unknown column 'age'"):
        run(frame, {"kind": "invariance", "column": "age", "perturbation": {"shift": 1}, "max_flip_rate": 0})
    with pytest.raises(ValueError, match="unknown column.*height"):
        run(frame, {"kind": "golden", "rows": [{"height": 1}], "expected": [1]})
    with pytest.raises(ValueError, match="missing key.*min_fraction"):
        run(frame, {"kind": "directional", "column": "x", "delta": 1, "expect": "increase"})
    with pytest.raises(ValueError, match="perturbation"):
        run(frame, {"kind": "invariance", "column": "x", "perturbation": {"jitter": 1}, "max_flip_rate": 0})
    with pytest.raises(ValueError, match="non-numeric"):
        run(
            frame,
            {"kind": "directional", "column": "colour", "delta": 1, "expect": "increase", "min_fraction": 1},
        )


def test_input_frame_is_not_mutated_and_names_are_unique(frame):
    before = frame.copy()
    results = run(
        frame,
        {"kind": "invariance", "column": "x", "perturbation": {"shift": 1.0}, "max_flip_rate": 1.0},
        {"kind": "invariance", "column": "x", "perturbation": {"replace": 0.0}, "max_flip_rate": 1.0},
        {"kind": "directional", "column": "x", "delta": 2.0, "expect": "increase", "min_fraction": 1.0},
    )
    pd.testing.assert_frame_equal(frame, before)
    assert [r.name for r in results] == ["invariance:x", "invariance:x#2", "directional:x"]
    assert all(isinstance(r, BehaviourResult) for r in results)
    assert results[0].to_dict()["kind"] == "invariance"


def test_golden_rows_and_replacement_keep_values_outside_a_categorical_vocabulary(frame):
    """Categorical feature columns (model_frame makes them) take golden and replaced values as given."""
    seen = []

    def record(f: pd.DataFrame) -> np.ndarray:
        seen.append(f["colour"].copy())
        return predict(f)

    categorical = frame.astype({"colour": "category"})
    golden = {"kind": "golden", "rows": [{"x": 5.0, "colour": "green"}, {"x": -5.0}], "expected": [1, 0]}
    replace = {"kind": "invariance", "column": "colour", "perturbation": {"replace": "green"}, "max_flip_rate": 0.0}
    results = run_behaviour_tests(record, categorical, [golden, replace], threshold=0.5)
    assert all(r.passed for r in results)
    assert seen[0].tolist() == ["green", categorical["colour"].mode().iloc[0]]
    assert (seen[2] == "green").all() and len(seen[2]) == len(frame)
    plain = run_behaviour_tests(predict, frame, [golden, replace], threshold=0.5)
    assert [r.to_dict() for r in plain] == [r.to_dict() for r in results]
