"""The gate and its paired bootstrap on multiclass and regression scores (binary: test_gates.py)."""

import numpy as np
import pytest

from components.evaluation.metrics import baseline_scores, task_metrics
from components.evaluation.slices import slice_metrics
from components.release.gate_statistics import paired_bootstrap
from components.release.gates import GatePolicy, decide
from components.release.metric_scorers import scorer
from components.vocabulary import TASK_METRICS

N, K = 1500, 4


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def world():
    """Targets plus predictions of known quality, for both tasks."""
    rng = np.random.default_rng(5)
    y_class = rng.integers(0, K, N)
    signal = np.eye(K)[y_class] * 2.0

    def classifier(noise):
        return softmax(signal + noise * rng.normal(size=(N, K)))

    y_value = rng.normal(100.0, 10.0, N)
    return {
        "multiclass": {
            "y": y_class,
            "champion": classifier(1.0),
            "better": classifier(0.4),
            "worse": classifier(2.5),
            "noise": softmax(rng.normal(size=(N, K))),
            "train": rng.integers(0, K, 5000),
        },
        "regression": {
            "y": y_value,
            "champion": y_value + rng.normal(0, 5.0, N),
            "better": y_value + rng.normal(0, 2.0, N),
            "worse": y_value + rng.normal(0, 9.0, N),
            "noise": 100.0 + rng.normal(0, 10.0, N),
            "train": rng.normal(100.0, 10.0, 5000),
        },
    }


def boot(task, y, a, b, metric, n_resamples=300, seed=3):
    return paired_bootstrap(
        y, a, b, metric=metric, threshold=0.5, n_resamples=n_resamples, seed=seed, confidence=0.95, task=task
    )


CASES = [(task, metric) for task in ("multiclass", "regression") for metric in TASK_METRICS[task]]


@pytest.mark.parametrize(("task", "metric"), CASES)
def test_bootstrap_values_equal_task_metrics(world, task, metric):
    """At weight 1 the bootstrap's values are task_metrics'; one resample's counts give its value on those rows."""
    w = world[task]
    result = boot(task, w["y"], w["better"], w["champion"], metric, n_resamples=20)
    assert result["a"] == pytest.approx(task_metrics(task, w["y"], w["better"], n_classes=K)[metric], abs=1e-9)
    assert result["b"] == pytest.approx(task_metrics(task, w["y"], w["champion"], n_classes=K)[metric], abs=1e-9)
    rows = np.random.default_rng(0).integers(0, N, N)
    counts = np.bincount(rows, minlength=N).astype(float)[:, None]
    resampled = task_metrics(task, w["y"][rows], w["better"][rows], n_classes=K)[metric]
    assert scorer(task, metric, w["y"], w["better"])(counts)[0] == pytest.approx(resampled, abs=1e-9)


@pytest.mark.parametrize("metric", ["rmse", "mae", "mape"])
def test_lower_is_better_regression_metric_in_the_bootstrap(world, metric):
    w = world["regression"]
    better = boot("regression", w["y"], w["better"], w["champion"], metric)
    assert better["diff"] < 0 and better["ci_high"] < 0 and better["p_value"] < 0.01
    worse = boot("regression", w["y"], w["worse"], w["champion"], metric)
    assert worse["diff"] > 0 and worse["ci_low"] > 0 and worse["p_value"] > 0.99
    same = boot("regression", w["y"], w["champion"], w["champion"], metric)
    assert same["diff"] == 0 and same["p_value"] == 1.0  # never better than itself


def test_distinct_rows_change_nothing_for_multiclass(world):
    """Rounded probabilities repeat: counting draws per distinct row gives the per-row bootstrap's numbers."""
    w = world["multiclass"]
    a, b = np.round(w["better"], 1), np.round(w["champion"], 1)
    for metric in ("f1_macro", "roc_auc_ovr"):
        grouped = boot("multiclass", w["y"], a, b, metric, n_resamples=60, seed=9)
        score_a, score_b = scorer("multiclass", metric, w["y"], a), scorer("multiclass", metric, w["y"], b)
        rng = np.random.default_rng(9)
        flat = rng.integers(0, N, size=(60, N)) * 60 + np.arange(60)[:, None]
        counts = np.bincount(flat.ravel(), minlength=N * 60).reshape(N, 60).astype(float)
        d = score_a(counts) - score_b(counts)
        low, high = np.quantile(d, [0.025, 0.975])
        assert grouped["ci_low"] == pytest.approx(low, abs=1e-12)
        assert grouped["ci_high"] == pytest.approx(high, abs=1e-12)


def test_roc_auc_ovr_skips_resamples_missing_a_class():
    rng = np.random.default_rng(0)
    y = np.r_[rng.integers(0, 3, 39), 3]  # class 3 on one row of 40: missing from ~36% of resamples
    p = softmax(rng.normal(size=(40, 4)))
    result = boot("multiclass", y, p, p[::-1], "roc_auc_ovr", n_resamples=300)
    assert 0 < result["n_valid"] < 300
    assert boot("multiclass", y, p, p[::-1], "f1_macro", n_resamples=300)["n_valid"] == 300
    with pytest.raises(ValueError, match=r"every class.*\[3\]"):
        boot("multiclass", y[:-1], p[:-1], p[:-1], "roc_auc_ovr")


def test_bootstrap_refuses_another_tasks_metric_and_bad_shapes(world):
    w = world["regression"]
    with pytest.raises(ValueError, match="regression metric 'roc_auc'"):
        boot("regression", w["y"], w["better"], w["champion"], "roc_auc")
    with pytest.raises(ValueError, match="rows, classes"):
        boot("multiclass", world["multiclass"]["y"], w["better"], w["champion"], "accuracy")
    zero = w["y"].copy()
    zero[0] = 0.0
    with pytest.raises(ValueError, match="mape"):
        boot("regression", zero, w["better"], w["champion"], "mape")


def policy(metric, **overrides):
    return GatePolicy(**{"primary_metric": metric, "n_resamples": 300, "seed": 4, "max_slice_drop": 0.05, **overrides})


def gate(world, task, challenger, pol, against="champion", **kwargs):
    w = world[task]
    extra = {"champion_proba": w["champion"]} if against == "champion" else {}
    if against == "baseline":
        extra = {"baseline_proba": baseline_scores(task, w["train"], N, K, metric=pol.primary_metric)}
    return decide(
        challenger_metrics=task_metrics(task, w["y"], w[challenger], n_classes=K),
        policy=pol,
        y_true=w["y"],
        challenger_proba=w[challenger],
        task=task,
        **extra,
        **kwargs,
    )


@pytest.mark.parametrize(("task", "metric"), [("multiclass", "f1_macro"), ("multiclass", "log_loss"),
                                              ("regression", "rmse"), ("regression", "r2")])  # fmt: skip
def test_champion_comparison_per_task_and_direction(world, task, metric):
    promoted = gate(world, task, "better", policy(metric))
    assert promoted.promote, promoted.reason
    assert promoted.comparison["higher_is_better"] is (metric in ("f1_macro", "r2"))
    kept = gate(world, task, "worse", policy(metric, policy="non_inferior", margin=0.01))
    assert not kept.promote and "non-inferior" in kept.reason


BASELINE_CASES = [(task, metric) for task in ("multiclass", "regression") for metric in TASK_METRICS[task]]


@pytest.mark.parametrize(("task", "metric"), BASELINE_CASES)
def test_baseline_gate_per_task(world, task, metric):
    """A model with signal beats the prior or the mean on every metric; noise beats it on none."""
    against = "class-prior baseline" if task == "multiclass" else "training-mean baseline"
    model = gate(world, task, "champion", policy(metric), against="baseline")
    assert model.promote, model.reason
    assert model.baseline["against"] == against and against in model.reason
    noise = gate(world, task, "noise", policy(metric), against="baseline")
    assert not noise.promote and noise.reason.startswith("kept: no better than the baseline")
    assert against in noise.summary_lines()[1]


def test_thresholds_on_lower_is_better_metrics(world):
    decision = gate(world, "regression", "better", policy("rmse", thresholds={"rmse": 3.0, "r2": 0.9}), against="none")
    assert decision.promote and decision.thresholds["rmse"]["op"] == "<=" and decision.thresholds["r2"]["op"] == ">="
    strict = gate(world, "regression", "better", policy("rmse", thresholds={"rmse": 1.0}), against="none")
    assert not strict.promote and "rmse=" in strict.reason and "<= 1.0" in strict.reason
    other_task = gate(world, "regression", "better", policy("rmse", thresholds={"roc_auc": 0.5}), against="none")
    assert not other_task.promote and "roc_auc=n/a" in other_task.reason


def test_multiclass_accuracy_reports_mcnemar(world):
    decision = gate(world, "multiclass", "better", policy("accuracy"))
    m = decision.comparison["mcnemar"]
    assert m["b"] > m["c"] and m["p_value"] < 0.001 and "McNemar" in decision.reason


def test_decide_refuses_a_primary_metric_of_another_task(world):
    with pytest.raises(ValueError, match="'roc_auc' is not a regression metric"):
        gate(world, "regression", "better", policy("roc_auc"))


def _slices(task, y, scores, group):
    import pandas as pd

    return slice_metrics(pd.DataFrame({"g": group}), y, scores, slice_columns=["g"], min_size=20, threshold=0.5,
                         task=task, n_classes=K)  # fmt: skip


def test_regression_slice_drop_is_measured_in_the_error_and_mape_falls_back_to_mae(world):
    w = world["regression"]
    group = np.where(np.arange(N) % 5 == 0, "B", "A")
    challenger = np.where(group == "A", w["better"], w["y"] + 1.5 * (w["champion"] - w["y"]))  # better, not on B
    args = {"challenger_slices": _slices("regression", w["y"], challenger, group),
            "champion_slices": _slices("regression", w["y"], w["champion"], group)}  # fmt: skip
    by_rmse = decide(challenger_metrics={}, policy=policy("rmse", max_slice_drop=0.2), y_true=w["y"],
                     challenger_proba=challenger, champion_proba=w["champion"], task="regression", **args)  # fmt: skip
    assert by_rmse.comparison["passed"] and not by_rmse.promote and "g=B" in by_rmse.reason
    b = by_rmse.slices["g=B"]
    assert b["metric"] == "rmse" and b["challenger"] > b["champion"]
    # lower is better: a rise is a drop, as a fraction of the champion's error (any target scale)
    assert b["relative"] and b["drop"] == pytest.approx(b["challenger"] / b["champion"] - 1)
    assert "of the champion's" in by_rmse.reason
    assert by_rmse.slices["g=A"]["drop"] < 0 and by_rmse.slices["g=A"]["passed"]
    by_mape = decide(challenger_metrics={}, policy=policy("mape", max_slice_drop=0.2), y_true=w["y"],
                     challenger_proba=challenger, champion_proba=w["champion"], task="regression", **args)  # fmt: skip
    assert {s["metric"] for s in by_mape.slices.values()} == {"mae"}


def test_multiclass_slices_compare_the_primary_metric(world):
    w = world["multiclass"]
    group = np.where(np.arange(N) % 4 == 0, "B", "A")
    challenger = np.where((group == "A")[:, None], w["better"], w["worse"])
    decision = decide(challenger_metrics={}, policy=policy("f1_macro"), y_true=w["y"], challenger_proba=challenger,
                      champion_proba=w["champion"], task="multiclass",
                      challenger_slices=_slices("multiclass", w["y"], challenger, group),
                      champion_slices=_slices("multiclass", w["y"], w["champion"], group))  # fmt: skip
    assert decision.slices["g=B"]["metric"] == "f1_macro" and not decision.slices["g=B"]["passed"]
    assert decision.slices["g=A"]["passed"]
    few = {"g=C": {"n": 30, "accuracy": 0.5, "f1_macro": 0.5, "roc_auc_ovr": None}}
    fallback = decide(challenger_metrics={}, policy=policy("roc_auc_ovr"), y_true=w["y"],
                      challenger_proba=w["better"], champion_proba=w["champion"], task="multiclass",
                      challenger_slices=few, champion_slices=few)  # fmt: skip
    assert fallback.slices["g=C"]["metric"] == "accuracy"
