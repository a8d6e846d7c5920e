"""What build_bento writes beside the service: the task's config and the bento's packages (the built bentos:
tests/serving/test_served_tasks.py and tests/e2e/test_serving.py)."""

from pathlib import Path

import pytest

from components.release.package import pinned_requirements, serving_config

ROOT = Path(__file__).resolve().parents[2]


def test_binary_classes_come_from_the_model_and_are_checked_against_it():
    meta = {"classes": [0, 1]}  # model.json from before tasks: binary
    assert serving_config("binary", None, None, meta) == {"task": "binary", "classes": [0, 1], "value_buckets": None}
    with pytest.raises(ValueError, match=r"classes: \['no', 'yes'\] differ from the model's own \[0, 1\]"):
        serving_config("binary", ["no", "yes"], None, meta)
    with pytest.raises(ValueError, match="task: the bento was asked for 'multiclass', but the model is a 'binary'"):
        serving_config("multiclass", None, None, meta)


def test_classes_given_for_a_model_without_model_json_are_used_as_they_are():
    import numpy as np

    config = serving_config("multiclass", [np.int64(1), np.int64(2), np.int64(3)], None, {})
    assert config["classes"] == [1, 2, 3] and all(type(c) is int for c in config["classes"])  # JSON-ready
    with pytest.raises(ValueError, match="classes: a multiclass bento needs the model's classes"):
        serving_config("multiclass", None, None, {})


def test_value_buckets_are_sorted_finite_and_only_for_regression():
    meta = {"task": "regression", "classes": []}
    config = serving_config("regression", [], [3.0, float("inf"), 1, 3.0, float("nan")], meta)
    assert config == {"task": "regression", "classes": [], "value_buckets": [1.0, 3.0]}
    assert serving_config("regression", None, None, meta)["value_buckets"] is None  # the service's default ladder
    with pytest.raises(ValueError, match="value_buckets: only a regression bento"):
        serving_config("binary", [0, 1], [1.0], {"classes": [0, 1]})
    with pytest.raises(ValueError, match="value_buckets: need at least one finite"):
        serving_config("regression", None, [float("nan")], meta)
    with pytest.raises(ValueError, match="task: 'ranking' is not one of"):
        serving_config("ranking", None, None, meta)


def test_lightgbm_joins_the_pinned_packages_only_when_asked():
    constraints = ROOT / "constraints.txt"
    pins = {p.partition("==")[0]: p for p in pinned_requirements(constraints)}
    assert "lightgbm" not in pins and pins["torch"].startswith("torch==")
    with_lgbm = pinned_requirements(constraints, ("lightgbm",))
    lock = {line.partition("==")[0].lower(): line for line in constraints.read_text().splitlines() if "==" in line}
    assert with_lgbm[-1] == lock["lightgbm"]  # the project's lock, not whatever is installed
    assert pinned_requirements(constraints, ("torch",)) == pinned_requirements(constraints)  # no duplicates
