"""The contract's task: guessed from the target, written with its reason, checked against labels and target."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from components.data.contract import ContractError, contract_from_dict, load_contract
from components.data.contract_inference import guess_task, infer_contract
from components.data.contract_yaml import contract_to_dict, save_contract
from components.data.dataset import split
from components.data.reading import normalise
from tests.data.task_frames import diabetes_frame, wine_frame


@pytest.mark.parametrize(
    ("values", "task", "why"),
    [
        (["yes", "no", "no"], "binary", "2 labels (no, yes)"),
        ([True, False, True], "binary", "2 labels"),
        ([0, 1, 2, 1, 0] * 20, "multiclass", "3 whole-number codes (0, 1, 2)"),  # codes, not a quantity
        (["barolo", "barbera", "grignolino"], "multiclass", "3 labels"),
        ([0.5, 1.25, 2.0, 0.5], "regression", "fractional values (3 distinct)"),
        (list(range(100)), "regression", "numeric with 100 distinct values"),
        ([1.0, 0.0, None, 1.0], "binary", "2 labels"),  # a 0/1 flag read as float because of a blank
    ],
)
def test_guess_task_reads_the_target(values, task, why):
    guessed, reason = guess_task(pd.Series(values, name="y"))
    assert guessed == task
    assert reason.startswith("'y' ") and why in reason


def test_wine_and_diabetes_are_guessed_right():
    assert guess_task(wine_frame()["cultivar"])[0] == "multiclass"
    assert guess_task(diabetes_frame()["progression"]) == (
        "regression",
        "'progression' is numeric with 214 distinct values",
    )


def test_a_regression_draft_keeps_target_bounds_lists_no_labels_and_round_trips(tmp_path):
    frame = diabetes_frame()
    contract = infer_contract(frame, "progression", name="diabetes")
    target = contract.column("progression")
    assert contract.task == "regression" and contract.labels == [] and contract.class_balance == {}
    assert target.dtype == "float" and not target.feature and not target.nullable
    assert target.min <= frame["progression"].min() and target.max >= frame["progression"].max()
    assert contract.column("region").allowed == ["centre", "north", "south"] and contract.column("region").nullable
    assert contract.evaluation["slices"]["columns"] == ["sex", "region"]  # the draft evaluation, unchanged

    path = tmp_path / "diabetes.yaml"
    save_contract(contract, path, task_reason=guess_task(frame["progression"])[1])
    text = path.read_text()
    assert "task: regression  # guessed: 'progression' is numeric with 214 distinct values; edit if wrong\n" in text
    assert "labels" not in yaml.safe_load(text) and "class_balance" not in yaml.safe_load(text)
    assert "training-mean baseline" in text
    assert load_contract(path) == contract
    assert contract_from_dict(contract_to_dict(contract)) == contract


def test_a_multiclass_draft_lists_every_class_and_says_three_must_occur(tmp_path):
    contract = infer_contract(wine_frame(), "cultivar", name="wine")
    assert contract.task == "multiclass" and contract.labels == ["barbera", "barolo", "grignolino"]
    assert set(contract.class_balance) == set(contract.labels)
    save_contract(contract, tmp_path / "wine.yaml")  # no reason given: the line lists the choices
    text = (tmp_path / "wine.yaml").read_text()
    assert "task: multiclass  # binary | multiclass | regression\n" in text
    assert "at least three must occur (rule: min_classes)" in text and "class-prior baseline" in text
    assert load_contract(tmp_path / "wine.yaml") == contract


def test_integer_codes_draft_a_multiclass_contract_and_a_given_task_wins():
    frame = wine_frame().assign(cultivar=lambda f: f["cultivar"].map({"barolo": 0, "grignolino": 1, "barbera": 2}))
    assert infer_contract(frame, "cultivar").labels == [0, 1, 2]
    forced = infer_contract(frame, "cultivar", task="regression")
    assert forced.task == "regression" and forced.column("cultivar").max >= 2


def _base(**patch) -> dict:
    columns = {"x": {"dtype": "float"}, "y": {"dtype": "float"}}
    return {"name": "t", "target": "y", "columns": columns, **patch}


def test_old_contracts_without_a_task_get_one_from_their_labels():
    assert contract_from_dict(_base(labels=[0, 1])).task == "binary"
    assert contract_from_dict(_base(labels=["a", "b", "c"], columns={"x": {}, "y": {"dtype": "string"}})).task == (
        "multiclass"
    )
    assert contract_from_dict(_base(task="regression")).labels == []
    assert contract_from_dict(_base(task="regression", labels=[])).task == "regression"


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        ({"task": "ranking", "labels": [0, 1]}, "task"),
        ({"task": "regression", "labels": [0, 1]}, "labels"),
        ({"task": "regression", "class_balance": {0: {"min": 0.1, "max": 0.9}}}, "class_balance"),
        ({"task": "regression", "columns": {"x": {}, "y": {"dtype": "category"}}}, r"columns\.y\.dtype"),
        ({"task": "binary", "labels": [0, 1, 2]}, "labels"),
        ({"task": "multiclass", "labels": [0, 1]}, "labels"),
        ({"task": "binary"}, "labels"),  # a classification contract lists its labels
        ({"labels": [0, 1], "evaluation": {"primary_metric": "rmse"}}, r"evaluation\.primary_metric"),
        ({"labels": [0, 1], "evaluation": {"primary_metric": "accuracy_top5"}}, r"evaluation\.primary_metric"),
        ({"task": "regression", "evaluation": {"thresholds": {"roc_auc": 0.8}}}, r"evaluation\.thresholds\.roc_auc"),
    ],
)
def test_a_task_that_does_not_fit_names_the_key(patch, key):
    with pytest.raises(ContractError, match=rf"^{key}"):
        contract_from_dict(_base(**patch))


def test_the_evaluation_section_may_choose_a_primary_metric_of_the_task(tmp_path):
    contract = contract_from_dict(_base(task="regression", evaluation={"primary_metric": "mae"}))
    assert contract.evaluation["primary_metric"] == "mae"
    save_contract(contract, tmp_path / "c.yaml")
    assert load_contract(tmp_path / "c.yaml").evaluation["primary_metric"] == "mae"


def test_reading_casts_a_regression_target_to_float_and_cuts_suffixes_of_labels_only():
    columns = {"x": {"dtype": "float"}, "y": {"dtype": "int"}}
    regression = contract_from_dict(_base(task="regression", columns=columns, reading={"label_strip_suffix": "."}))
    out = normalise(pd.DataFrame({"x": [1.0, 2.0], "y": ["3", " 4 "]}), regression)
    assert out["y"].dtype == np.float64 and out["y"].tolist() == [3.0, 4.0]
    labelled = contract_from_dict(_base(labels=["no", "yes"], columns={"x": {}, "y": {"dtype": "category"}},
                                        reading={"label_strip_suffix": "."}))  # fmt: skip
    assert normalise(pd.DataFrame({"x": [1.0, 2.0], "y": ["no.", "yes"]}), labelled)["y"].tolist() == ["no", "yes"]


def test_a_regression_split_is_seeded_and_every_part_covers_the_target_range():
    frame = diabetes_frame()
    a = split(frame, "progression", 0.2, 0.25, seed=3, task="regression")
    b = split(frame, "progression", 0.2, 0.25, seed=3, task="regression")
    pd.testing.assert_frame_equal(a.test, b.test)
    pd.testing.assert_frame_equal(a.train, b.train)
    assert sum(a.sizes().values()) == len(frame)
    low, high = frame["progression"].quantile([0.1, 0.9])
    deciles = frame["progression"].quantile(np.linspace(0, 1, 11)).to_numpy()
    for part in (a.train, a.val, a.test):
        assert part["progression"].min() <= low and part["progression"].max() >= high
        # every decile of the whole target lands in every part, in proportion (stratified on quantile bins)
        shares = pd.cut(part["progression"], deciles, labels=False, include_lowest=True).value_counts(normalize=True)
        assert len(shares) == 10 and shares.max() - shares.min() < 0.03, shares  # unstratified: up to 0.15
    other = split(frame, "progression", 0.2, 0.25, seed=4, task="regression")
    assert set(other.test["progression"].index) and not other.test.equals(a.test)


def test_a_tiny_regression_split_falls_back_to_no_stratification():
    frame = pd.DataFrame({"x": range(12), "y": np.linspace(0, 1, 12)})
    parts = split(frame, "y", 0.25, 0.25, seed=0, task="regression")
    assert sum(parts.sizes().values()) == 12


def test_binary_split_is_unchanged_by_the_task_argument():
    frame = pd.DataFrame({"x": range(200), "target": [0] * 150 + [1] * 50})
    pd.testing.assert_frame_equal(split(frame, "target", 0.2, 0.25, 3).test,
                                  split(frame, "target", 0.2, 0.25, 3, task="binary").test)  # fmt: skip
