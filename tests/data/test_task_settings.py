"""The run's task decides the primary metric, the thresholds it may gate on and which candidates train."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from components.config import ConfigError, load_settings
from components.data.contract import load_contract
from components.data.contract_inference import infer_contract
from components.dataset_settings import check_target_fits, resolve, task_of
from tests.conftest import ROOT
from tests.data.task_frames import diabetes_frame, wine_frame

ALL = {"logreg", "hgb", "ridge", "rf", "lgbm", "mlp"}


@pytest.fixture(scope="module")
def diabetes():
    return infer_contract(diabetes_frame(), "progression", name="diabetes")


@pytest.fixture(scope="module")
def wine():
    return infer_contract(wine_frame(), "cultivar", name="wine")


def _settings(*overrides: str):
    return load_settings(ROOT / "params.yaml", list(overrides))


def test_each_task_gets_its_default_primary_metric_and_its_candidates(diabetes, wine):
    binary = resolve(_settings(), load_contract(ROOT / "contracts" / "breast_cancer.yaml"))
    assert binary.evaluate.primary_metric == "roc_auc"
    assert set(binary.train.enabled()) == ALL - {"ridge"}  # ridge lists tasks: [regression]
    assert binary.train.candidates["ridge"].enabled is False  # disabled, not dropped

    regression = resolve(_settings(), diabetes)
    assert regression.evaluate.primary_metric == "rmse"
    assert set(regression.train.enabled()) == ALL - {"logreg"}  # logreg lists tasks: [binary, multiclass]

    multiclass = resolve(_settings(), wine)
    assert multiclass.evaluate.primary_metric == "f1_macro"
    assert set(multiclass.train.enabled()) == ALL - {"ridge"}


def test_the_contract_may_choose_the_primary_metric_and_params_still_win(diabetes):
    chosen = dataclasses.replace(diabetes, evaluation={**diabetes.evaluation, "primary_metric": "mae"})
    assert resolve(_settings(), chosen).evaluate.primary_metric == "mae"
    assert resolve(_settings("evaluate.primary_metric=r2"), chosen).evaluate.primary_metric == "r2"


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["evaluate.primary_metric=roc_auc"], r"evaluate\.primary_metric: 'roc_auc' does not rank regression"),
        (["evaluate.thresholds={f1: 0.8}"], r"evaluate\.thresholds\.f1: not a metric of regression"),
        (
            ["train.candidates.logreg.tasks=null"],
            r"train\.candidates\.logreg\.family: sklearn_logreg cannot "
            r"learn regression.*add tasks: \[binary, multiclass\]",
        ),  # fmt: skip
        (
            ["train.candidates.ridge.tasks=[regression, binary]"],
            r"train\.candidates\.ridge\.tasks: sklearn_ridge "
            r"cannot learn binary",
        ),  # fmt: skip
        (
            [f"train.candidates.{c}.enabled=false" for c in ("hgb", "ridge", "rf", "lgbm", "mlp")],
            r"train\.candidates: no enabled candidate trains regression models",
        ),  # fmt: skip
    ],
)
def test_settings_that_do_not_fit_the_task_name_their_key(diabetes, overrides, key):
    with pytest.raises(ConfigError, match=key):
        resolve(_settings(*overrides), diabetes)


def test_a_disabled_candidate_needs_no_tasks_and_a_family_claim_is_checked_only_when_enabled(diabetes):
    settings = resolve(_settings("train.candidates.logreg.tasks=null", "train.candidates.logreg.enabled=false"),
                       diabetes)  # fmt: skip
    assert "logreg" not in settings.train.enabled()
    with pytest.raises(ConfigError, match=r"train\.candidates\.ridge\.family"):
        resolve(_settings("train.candidates.ridge.tasks=null"), load_contract(ROOT / "contracts" / "adult.yaml"))


def test_without_a_contract_the_given_task_applies():
    settings = _settings("promote.registered_model=any", "validate.contract=null")
    assert task_of(None) == "binary" and task_of(None, "regression") == "regression"
    assert resolve(settings, None, task="regression").evaluate.primary_metric == "rmse"
    assert resolve(settings, None).evaluate.primary_metric == "roc_auc"
    with pytest.raises(ConfigError, match="task: 'ranking'"):
        resolve(settings, None, task="ranking")


@pytest.mark.parametrize(
    ("task", "values"),
    [
        ("binary", ["no", "yes", "no", None]),
        ("multiclass", ["barolo", "barbera", "grignolino"]),
        ("regression", pd.Series([1.5, 2.0, 7.25])),
        ("regression", pd.Series([1, 2, 3], dtype="int64")),
    ],
)
def test_a_target_that_fits_the_task_passes(task, values):
    check_target_fits(task, values, "y", where="data")


@pytest.mark.parametrize(
    ("task", "values", "message"),
    [
        ("binary", ["a", "b", "c"], r"task is binary but target 'y' has 3 distinct label\(s\).*task: multiclass"),
        ("binary", ["a", "a"], r"task is binary but target 'y' has 1 distinct"),
        ("multiclass", ["a", "b", "a"], r"task is multiclass but target 'y' has 2 .*task: binary"),
        ("regression", pd.Series(["1.5", "high", None]), r"task is regression .*not numbers \(e\.g\. 'high'\)"),
        ("regression", pd.Series([True, False]), r"task is regression .*not numbers"),
        ("regression", pd.Series([0.0, 1.0, 1.0]), r"task is regression .*only 2 distinct value"),
    ],
)
def test_a_target_that_does_not_fit_the_task_is_refused_naming_task(task, values, message):
    with pytest.raises(ConfigError, match=r"^contract c\.yaml: " + message):
        check_target_fits(task, values, "y", where="contract c.yaml")
