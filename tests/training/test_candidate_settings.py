"""Candidate specs of the new families, and the ``tasks`` key every candidate may carry."""

import pytest
from pydantic import TypeAdapter, ValidationError

from components.model.tasks import TASKS
from components.settings_base import KeyedError
from components.training.candidate_settings import FAMILIES, FAMILY_TASKS, Candidate, check_search

SPECS = {
    "sklearn_ridge": {"alpha": 1.0},
    "sklearn_rf": {"n_estimators": 50, "max_depth": None, "min_samples_leaf": 2},
    "lightgbm": {"n_estimators": 100, "learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 20},
}


def parse(raw: dict):
    return TypeAdapter(Candidate).validate_python(raw)


def test_every_family_has_its_tasks():
    assert set(FAMILY_TASKS) == set(FAMILIES) and all(set(t) <= set(TASKS) for t in FAMILY_TASKS.values())
    assert FAMILY_TASKS["sklearn_logreg"] == ("binary", "multiclass")
    assert FAMILY_TASKS["sklearn_ridge"] == ("regression",)


@pytest.mark.parametrize("family", list(SPECS))
def test_new_families_parse_and_tasks_is_not_a_hyper_parameter(family):
    spec = parse({"family": family, "tasks": ["regression"], **SPECS[family]})
    assert spec.tasks == ["regression"]
    assert spec.hyper_parameters() == tuple(SPECS[family])
    assert parse({"family": family, **SPECS[family]}).tasks is None  # None: the candidate claims every task


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"family": "lightgbm", "tasks": ["clustering"], **SPECS["lightgbm"]}, "tasks"),
        ({"family": "lightgbm", "tasks": [], **SPECS["lightgbm"]}, "tasks"),
        ({"family": "sklearn_rf", **SPECS["sklearn_rf"], "max_depth": 0}, "max_depth"),
        ({"family": "sklearn_ridge", "alpha": 0.0}, "alpha"),
        ({"family": "lightgbm", **SPECS["lightgbm"], "num_leaves": 1}, "num_leaves"),
    ],
)
def test_bad_values_are_refused_by_key(raw, where):
    with pytest.raises(ValidationError) as err:
        parse(raw)
    assert err.value.errors()[0]["loc"][1] == where


def test_search_spaces_of_the_new_families():
    space = {"max_depth": {"choices": [None, 8]}, "min_samples_leaf": {"low": 1, "high": 20, "type": "int"}}
    check_search("rf", parse({"family": "sklearn_rf", **SPECS["sklearn_rf"], "search": space}))
    lgbm = parse({"family": "lightgbm", **SPECS["lightgbm"], "search": {"tasks": {"choices": [["binary"]]}}})
    with pytest.raises(KeyedError, match=r"train\.candidates\.lgbm\.search: 'tasks' is not a parameter of lightgbm"):
        check_search("lgbm", lgbm)
    space = {"num_leaves": {"low": 1, "high": 64, "type": "int"}}
    lgbm = parse({"family": "lightgbm", **SPECS["lightgbm"], "search": space})
    with pytest.raises(KeyedError, match=r"search\.num_leaves: 1 is not a valid num_leaves"):
        check_search("lgbm", lgbm)
