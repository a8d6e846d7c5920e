import json
import math
from concurrent.futures import ThreadPoolExecutor

import pytest

from components.evaluation.metrics import EvalResult
from components.training.search import (
    SearchFailedError,
    SearchSpace,
    TrialFailure,
    choose_candidate,
    fit_and_score,
    run_search,
    search_value,
)
from tests.training.task_data import make_frame

SPACE = {
    "learning_rate": {"low": 0.01, "high": 0.3, "log": True},
    "max_leaf_nodes": {"low": 8, "high": 64, "type": "int"},
}
BASE = {"family": "sklearn_hgb", "enabled": True, "learning_rate": 0.1, "max_iter": 10, "max_leaf_nodes": 31}


def score(spec: dict) -> float:
    """A smooth stand-in for a validation metric, best near learning_rate=0.1, max_leaf_nodes=20."""
    return -((spec["learning_rate"] - 0.1) ** 2) - (spec["max_leaf_nodes"] - 20) ** 2 / 1e4


def sequential(specs):
    return [score(s) for s in specs]


def reversed_order(specs):
    return list(reversed([score(s) for s in reversed(specs)]))


def threaded(specs):
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(score, specs))


def search(evaluate_batch=sequential, **kw):
    args = {"n_trials": 12, "batch_size": 3, "seed": 7, **kw}
    return run_search("hgb", {**BASE, "search": SPACE}, SPACE, evaluate_batch=evaluate_batch, **args)


def test_same_seed_gives_same_trials_and_best():
    a, b = search(), search()
    assert a.to_dict() == b.to_dict()
    assert search(seed=8).to_dict()["trials"] != a.to_dict()["trials"]


@pytest.mark.parametrize("engine", [reversed_order, threaded])
def test_result_does_not_depend_on_how_a_batch_is_evaluated(engine):
    assert search(evaluate_batch=engine).to_dict() == search().to_dict()


def test_batches_never_exceed_n_trials_or_batch_size():
    sizes = []

    def recording(specs):
        sizes.append(len(specs))
        return sequential(specs)

    result = search(recording, n_trials=7, batch_size=3)
    assert sizes == [3, 3, 1]
    assert [t.number for t in result.trials] == list(range(7))


def test_trial_specs_are_whole_candidate_specs_within_the_space():
    result = search()
    for trial in result.trials:
        assert "search" not in trial.spec
        assert trial.spec["max_iter"] == 10 and trial.spec["family"] == "sklearn_hgb"
        assert 0.01 <= trial.spec["learning_rate"] <= 0.3
        assert isinstance(trial.spec["max_leaf_nodes"], int) and 8 <= trial.spec["max_leaf_nodes"] <= 64
        assert trial.params == {k: trial.spec[k] for k in SPACE}


def test_best_is_the_highest_value_and_the_earliest_on_ties():
    result = search()
    values = [t.value for t in result.trials]
    assert result.best_value == max(values)
    assert result.best_number == values.index(max(values))
    assert result.best_spec == result.trials[result.best_number].spec
    assert search(lambda specs: [0.5] * len(specs)).best_number == 0


def test_failed_trials_are_recorded_and_skipped():
    outcomes = iter([None, TrialFailure.from_exception(RuntimeError("boom")), math.nan, 0.2, 0.9, 0.1])
    result = search(lambda specs: [next(outcomes) for _ in specs], n_trials=6, batch_size=2)
    states = [(t.state, t.reason) for t in result.trials]
    assert states[:3] == [
        ("failed", "no value returned"),
        ("failed", "RuntimeError: boom"),
        ("failed", "non-finite value nan"),
    ]
    assert result.best_number == 4 and result.best_value == 0.9
    json.dumps(result.to_dict())  # loggable as is


def test_a_search_where_every_trial_fails_says_so():
    with pytest.raises(SearchFailedError, match="candidate 'hgb': all 2 trials failed .*boom") as err:
        search(lambda specs: [TrialFailure("boom")] * len(specs), n_trials=2)
    assert len(err.value.trials) == 2


def test_evaluate_batch_must_return_one_value_per_spec():
    with pytest.raises(ValueError, match="returned 1 values for 3 specs"):
        search(lambda specs: [0.1])


@pytest.mark.parametrize("bad", [{"n_trials": 0}, {"batch_size": 0}])
def test_search_arguments_are_checked(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        search(**bad)


def test_categorical_choices_may_be_lists():
    space = SearchSpace.from_config({"hidden": {"choices": [[8], [16, 8]]}, "lr": {"low": 1e-3, "high": 1e-1}})
    dists = space.distributions()
    assert type(dists["hidden"]).__name__ == "CategoricalDistribution"
    assert type(dists["lr"]).__name__ == "FloatDistribution"
    decoded = space.decode({"hidden": 1, "lr": 0.01})
    assert decoded == {"hidden": [16, 8], "lr": 0.01}
    decoded["hidden"].append(4)  # a spec is the caller's to change; the space stays as configured
    assert space.dimensions["hidden"].choices[1] == [16, 8]


def test_search_value_flips_lower_is_better_metrics():
    result = EvalResult("c", "val", 10, {"roc_auc": 0.8, "log_loss": 0.3})
    assert search_value(result, "roc_auc") == 0.8
    assert search_value(result, "log_loss") == -0.3
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        search_value(result, "auc")


@pytest.fixture(scope="module")
def splits():
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.sample(n=240, random_state=0)
    return frame.iloc[:160], frame.iloc[160:]


def test_fit_and_score_scores_on_the_validation_split(splits):
    train, val = splits
    spec = {"family": "sklearn_logreg", "enabled": True, "C": 1.0, "max_iter": 500, "search": SPACE}
    model, result = fit_and_score("logreg", spec, train, val, "target", seed=0, threshold=0.5, primary_metric="roc_auc")
    assert (result.candidate, result.split, result.n_rows) == ("logreg", "val", len(val))
    assert result.metrics["roc_auc"] > 0.9
    assert "search" not in model.params


def test_fit_and_score_uses_validation_data_for_early_stopping(splits):
    train, val = splits
    spec = {"family": "torch_mlp", "epochs": 30, "lr": 0.01, "hidden": [8], "batch_size": 32,
            "weight_decay": 0.0, "early_stopping_patience": 3}  # fmt: skip
    model, result = fit_and_score("mlp", spec, train, val, "target", seed=0, threshold=0.5, primary_metric="f1")
    assert 1 <= model.extra["best_epoch"] <= model.extra["epochs_trained"] <= 30
    assert result.split == "val"


def test_fit_and_score_rejects_unknown_metric(splits):
    train, val = splits
    with pytest.raises(ValueError, match="unknown primary_metric 'auc'"):
        fit_and_score("c", BASE, train, val, "target", seed=0, threshold=0.5, primary_metric="auc")


def test_fit_and_score_needs_a_family(splits):
    train, val = splits
    with pytest.raises(ValueError, match="candidate 'c': spec has no 'family'"):
        fit_and_score("c", {"C": 1.0}, train, val, "target", seed=0, threshold=0.5, primary_metric="f1")


def test_search_over_real_fits_is_engine_independent(splits):
    """The whole loop on real models: threads and a plain loop pick the same spec."""
    train, val = splits
    base = {"family": "sklearn_logreg", "C": 1.0, "max_iter": 500}
    space = {"C": {"low": 0.01, "high": 10.0, "log": True}}

    def one(spec):
        _, result = fit_and_score("logreg", spec, train, val, "target", seed=0, threshold=0.5, primary_metric="f1")
        return search_value(result, "f1")

    def pooled(specs):
        with ThreadPoolExecutor(max_workers=2) as pool:
            return list(pool.map(one, specs))

    kw = {"n_trials": 4, "batch_size": 2, "seed": 3}
    a = run_search("logreg", base, space, evaluate_batch=lambda specs: [one(s) for s in specs], **kw)
    b = run_search("logreg", base, space, evaluate_batch=pooled, **kw)
    assert a.to_dict() == b.to_dict()
    assert a.best_value == max(t.value for t in a.trials)


@pytest.mark.parametrize(
    ("task", "spec", "metric"),
    [
        ("multiclass", {"family": "lightgbm", "n_estimators": 20, "learning_rate": 0.2, "num_leaves": 8,
                        "min_child_samples": 5}, "f1_macro"),
        ("regression", {"family": "sklearn_rf", "tasks": ["regression"], "n_estimators": 10, "max_depth": None,
                        "min_samples_leaf": 2}, "rmse"),
    ],
)  # fmt: skip
def test_fit_and_score_trains_for_the_task(task, spec, metric):
    train, val = make_frame(task, 200, 0), make_frame(task, 80, 1)
    model, result = fit_and_score("c", spec, train, val, "target", seed=0, threshold=0.5, primary_metric=metric,
                                  task=task)  # fmt: skip
    assert model.task == task and "tasks" not in model.params
    assert result.split == "val" and metric in result.metrics


def test_a_regression_search_keeps_the_lowest_error():
    """rmse is lower-is-better: the search maximises its negative, and the chosen model has the lowest."""
    train, val = make_frame("regression", 200, 0), make_frame("regression", 80, 1)
    spec = {"family": "sklearn_ridge", "alpha": 1.0, "search": {"alpha": {"low": 0.01, "high": 1000.0, "log": True}}}

    def fit_batch(specs):
        return [fit_and_score("ridge", s, train, val, "target", seed=0, threshold=0.5, primary_metric="rmse",
                              task="regression") for s in specs]  # fmt: skip

    outcome = choose_candidate("ridge", spec, n_trials=5, batch_size=2, seed=0, primary_metric="rmse",
                               fit_batch=fit_batch)  # fmt: skip
    errors = [r.metrics["rmse"] for r in outcome.trial_results.values()]
    assert len(set(errors)) > 1 and outcome.result.metrics["rmse"] == min(errors)
    assert outcome.search.best_value == -min(errors)
