"""Metrics of every task against scikit-learn, the no-feature baseline, and choosing by a lower-is-better metric."""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as m

from components.evaluation.metrics import EvalResult, baseline_scores, choose_best, evaluate, task_metrics
from components.model import tasks
from components.vocabulary import TASK_METRICS

K = 4


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def multiclass_data(n=500, seed=0, strength=1.5):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n)
    logits = rng.normal(size=(n, K))
    logits[np.arange(n), y] += strength
    return y, softmax(logits)


def regression_data(n=500, seed=0, noise=3.0):
    rng = np.random.default_rng(seed)
    y = rng.normal(50, 10, n)
    return y, y + rng.normal(0, noise, n)


def test_multiclass_metrics_equal_sklearn():
    y, p = multiclass_data()
    got = task_metrics("multiclass", y, p)
    pred = p.argmax(axis=1)
    assert set(got) == set(TASK_METRICS["multiclass"])
    assert got["accuracy"] == pytest.approx(m.accuracy_score(y, pred), abs=1e-12)
    assert got["balanced_accuracy"] == pytest.approx(m.balanced_accuracy_score(y, pred), abs=1e-12)
    assert got["f1_macro"] == pytest.approx(m.f1_score(y, pred, average="macro"), abs=1e-12)
    assert got["f1_weighted"] == pytest.approx(m.f1_score(y, pred, average="weighted"), abs=1e-12)
    assert got["log_loss"] == pytest.approx(m.log_loss(y, p, labels=range(K)), abs=1e-12)
    expected_auc = m.roc_auc_score(y, p, multi_class="ovr", average="macro", labels=range(K))
    assert got["roc_auc_ovr"] == pytest.approx(expected_auc, abs=1e-12)


def test_multiclass_without_a_class_in_the_target_has_no_roc_auc_ovr():
    y, p = multiclass_data()
    keep = y != 2
    got = task_metrics("multiclass", y[keep], p[keep], n_classes=K)
    assert "roc_auc_ovr" not in got
    assert got["log_loss"] == pytest.approx(m.log_loss(y[keep], p[keep], labels=range(K)), abs=1e-12)
    # balanced accuracy averages over the classes present, as sklearn (which also warns about class 2)
    with pytest.warns(UserWarning):
        expected = m.balanced_accuracy_score(y[keep], p[keep].argmax(axis=1))
    assert got["balanced_accuracy"] == pytest.approx(expected, abs=1e-12)


def test_regression_metrics_equal_sklearn_and_mape_needs_no_zero():
    y, v = regression_data()
    got = task_metrics("regression", y, v)
    assert set(got) == {"rmse", "mae", "r2", "mape"}
    assert got["rmse"] == pytest.approx(m.root_mean_squared_error(y, v), abs=1e-12)
    assert got["mae"] == pytest.approx(m.mean_absolute_error(y, v), abs=1e-12)
    assert got["r2"] == pytest.approx(m.r2_score(y, v), abs=1e-12)
    assert got["mape"] == pytest.approx(m.mean_absolute_percentage_error(y, v), abs=1e-12)
    y[3] = 0.0
    assert "mape" not in task_metrics("regression", y, v)


def test_binary_metrics_unchanged():
    y = np.array([0, 1, 1, 0, 1])
    p = np.array([0.1, 0.6, 0.7, 0.4, 0.3])
    got = task_metrics("binary", y, p, threshold=0.5)
    assert got["roc_auc"] == pytest.approx(m.roc_auc_score(y, p)) and got["threshold"] == 0.5
    assert list(got) == ["roc_auc", "pr_auc", "f1", "accuracy", "balanced_accuracy", "log_loss", "brier", "threshold"]


def test_baseline_scores_per_task():
    binary = baseline_scores("binary", np.array([0, 1, 1, 1]), 3)
    assert binary.shape == (3,) and np.all(binary == 0.75)
    multi = baseline_scores("multiclass", np.array([0, 2, 2, 2]), 2, n_classes=4)
    np.testing.assert_array_equal(multi, [[0.25, 0, 0.75, 0], [0.25, 0, 0.75, 0]])
    mean = baseline_scores("regression", np.array([1.0, 2.0, 6.0]), 5)
    assert mean.shape == (5,) and np.all(mean == 3.0)
    with pytest.raises(ValueError, match="task"):
        baseline_scores("ranking", np.array([1]), 1)


@pytest.mark.parametrize(
    ("metric", "values", "best"),
    [("rmse", [3.0, 1.5, 2.0], "b"), ("log_loss", [0.4, 0.5, 0.3], "c"), ("r2", [0.2, 0.9, 0.5], "b")],
)
def test_choose_best_follows_the_metric_direction(metric, values, best):
    results = [EvalResult(name, "val", 10, {metric: v}) for name, v in zip("abc", values, strict=True)]
    assert choose_best(results, metric).candidate == best


@dataclass
class StandIn:
    """The parts of a TrainedModel that evaluate uses, answering from a fixed column."""

    task: str
    classes: list = field(default_factory=list)
    name: str = "stand-in"
    threshold: float = 0.5

    def encode_target(self, y, what="y"):
        return tasks.encode_target(self.task, y, self.classes, what)

    def predict_scores(self, X):
        if self.task == "multiclass":
            return softmax(np.column_stack([-((X["x"].to_numpy() - c) ** 2) for c in range(len(self.classes))]))
        return X["x"].to_numpy(dtype=float)


def test_evaluate_uses_the_models_task():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, 300).astype(float)
    labels = np.array(["a", "b", "c"])[x.astype(int)]
    multi = evaluate(StandIn("multiclass", ["a", "b", "c"]), pd.DataFrame({"x": x, "t": labels}), "t", "val")
    assert multi.metrics["accuracy"] == 1.0 and set(multi.metrics) == set(TASK_METRICS["multiclass"])
    values = rng.normal(size=300)
    reg = evaluate(StandIn("regression"), pd.DataFrame({"x": values, "t": values + 0.5}), "t", "test")
    assert reg.metrics["mae"] == pytest.approx(0.5) and reg.split == "test" and reg.n_rows == 300
    with pytest.raises(ValueError, match="val target 't'"):
        evaluate(StandIn("multiclass", ["a", "b"]), pd.DataFrame({"x": x, "t": labels}), "t", "val")


def test_multiclass_f1_baseline_guesses_by_the_class_frequencies():
    """Always answering the majority class scores ~1/k of its F1; the F1 baseline guesses instead."""
    train = np.repeat([0, 1, 2], [500, 300, 200])
    guesses = baseline_scores("multiclass", train, 20_000, 3, metric="f1_macro", seed=1)
    np.testing.assert_allclose(guesses.sum(axis=1), 1.0)
    shares = np.bincount(guesses.argmax(axis=1), minlength=3) / 20_000
    np.testing.assert_allclose(shares, [0.5, 0.3, 0.2], atol=0.02)
    np.testing.assert_array_equal(guesses, baseline_scores("multiclass", train, 20_000, 3, metric="f1_macro", seed=1))
    prior = baseline_scores("multiclass", train, 5, 3, metric="log_loss")
    assert (prior.argmax(axis=1) == 0).all()  # every other metric: the frequencies themselves


def test_choose_best_names_a_metric_undefined_on_the_split():
    results = [EvalResult("a", "val", 10, {"rmse": 1.0}), EvalResult("b", "val", 10, {"rmse": 2.0})]
    with pytest.raises(ValueError, match="a, b have no mape on val"):
        choose_best(results, "mape")
