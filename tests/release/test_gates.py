import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from components.evaluation.behaviour import BehaviourResult
from components.evaluation.metrics import binary_metrics
from components.evaluation.slices import slice_metrics
from components.release.gate_statistics import mcnemar, paired_bootstrap
from components.release.gates import GatePolicy, decide
from components.release.metric_scorers import binary_scorer as _scorer

N = 2000


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@pytest.fixture(scope="module")
def world():
    """Labels plus predictions whose quality is known by construction."""
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, N)
    sign = 2 * y - 1
    champion = sigmoid(sign + rng.normal(size=N))
    return {
        "y": y,
        "sign": sign,
        "champion": champion,
        "better": sigmoid(sign + 0.4 * rng.normal(size=N)),
        "worse": sigmoid(sign + 2.5 * rng.normal(size=N)),
        "twin": np.clip(champion + rng.normal(0, 1e-4, N), 0, 1),  # same model, tiny noise
        "rng": rng,
    }


def policy(**overrides):
    base = {"primary_metric": "roc_auc", "n_resamples": 400, "seed": 11, "max_slice_drop": 0.05}
    return GatePolicy(**{**base, **overrides})


def gate(world, challenger, pol, **kwargs):
    metrics = binary_metrics(world["y"], world[challenger], 0.5)
    return decide(
        challenger_metrics=metrics,
        policy=pol,
        y_true=world["y"],
        challenger_proba=world[challenger],
        champion_proba=world["champion"],
        challenger_version="7",
        champion_version="6",
        **kwargs,
    )


def test_clearly_better_challenger_is_promoted(world):
    decision = gate(world, "better", policy())
    assert decision.promote, decision.reason
    c = decision.comparison
    assert c["ci_low"] > 0 and c["challenger"] > c["champion"] and c["n_valid"] == 400
    assert decision.reason.startswith("promoted") and "roc_auc" in decision.reason and "CI" in decision.reason


def test_clearly_worse_challenger_is_kept(world):
    decision = gate(world, "worse", policy(policy="non_inferior", margin=0.01))
    assert not decision.promote
    assert decision.comparison["ci_high"] < 0
    assert "non-inferior" in decision.reason and f"{decision.comparison['champion']:.4f}" in decision.reason


def test_equal_within_noise_depends_on_policy(world):
    superior = gate(world, "twin", policy())
    assert not superior.promote
    assert superior.comparison["ci_low"] <= 0 <= superior.comparison["ci_high"]
    assert "not superior" in superior.reason
    non_inferior = gate(world, "twin", policy(policy="non_inferior", margin=0.01))
    assert non_inferior.promote, non_inferior.reason
    identical = gate({**world, "twin": world["champion"]}, "twin", policy())
    assert not identical.promote and identical.comparison["ci_low"] == 0.0


def test_slice_regression_keeps_and_names_the_slice(world):
    y, sign, rng = world["y"], world["sign"], world["rng"]
    group = np.where(np.random.default_rng(1).random(N) < 0.85, "A", "B")
    noise = rng.normal(size=N)
    challenger = np.where(group == "A", sigmoid(sign + 0.3 * noise), sigmoid(sign + 1.6 * noise))
    frame = pd.DataFrame({"group": group})
    args = {"slice_columns": ["group"], "min_size": 50, "threshold": 0.5}
    decision = decide(
        challenger_metrics=binary_metrics(y, challenger, 0.5),
        policy=policy(),
        y_true=y,
        challenger_proba=challenger,
        champion_proba=world["champion"],
        challenger_slices=slice_metrics(frame, y, challenger, **args),
        champion_slices=slice_metrics(frame, y, world["champion"], **args),
    )
    assert decision.comparison["passed"], "overall the challenger should be better"
    assert not decision.promote
    assert "group=B" in decision.reason and "group=A" not in decision.reason
    assert decision.slices["group=A"]["passed"] and not decision.slices["group=B"]["passed"]
    assert decision.slices["group=B"]["drop"] > 0.05


def test_slice_without_auc_falls_back_to_accuracy():
    pol = policy()
    slices_new = {"s=1": {"n": 30, "accuracy": 0.70, "roc_auc": None}}
    slices_old = {"s=1": {"n": 30, "accuracy": 0.90, "roc_auc": None}, "s=2": {"n": 30, "accuracy": 1.0}}
    y = np.array([0, 1] * 50)
    p = np.where(y == 1, 0.8, 0.2)
    decision = decide(
        challenger_metrics={},
        policy=pol,
        y_true=y,
        challenger_proba=p,
        champion_proba=p,
        challenger_slices=slices_new,
        champion_slices=slices_old,
    )
    assert list(decision.slices) == ["s=1"]  # only slices present in both are compared
    assert decision.slices["s=1"]["metric"] == "accuracy"
    assert decision.slices["s=1"]["drop"] == pytest.approx(0.2)


def test_failing_threshold_is_named(world):
    decision = gate(world, "better", policy(thresholds={"roc_auc": 0.5, "log_loss": 0.01}))
    assert not decision.promote
    assert "log_loss" in decision.reason and "roc_auc" not in decision.reason.split("threshold not met")[1]
    assert decision.thresholds["roc_auc"]["passed"] and not decision.thresholds["log_loss"]["passed"]
    assert decision.thresholds["log_loss"]["op"] == "<="
    missing = gate(world, "better", policy(thresholds={"recall": 0.5}))
    assert not missing.promote and "recall" in missing.reason


def test_no_champion_promotes_on_thresholds(world):
    metrics = binary_metrics(world["y"], world["better"], 0.5)
    decision = decide(challenger_metrics=metrics, policy=policy(thresholds={"roc_auc": 0.9}))
    assert decision.promote and decision.comparison is None
    assert "no champion" in decision.reason and "roc_auc" in decision.reason


def test_failed_behaviour_keeps(world):
    results = [
        BehaviourResult("golden", "golden", True, "2/2 rows", {}),
        BehaviourResult("invariance:x", "invariance", False, "flips on 12.00% of rows", {"flip_rate": 0.12}),
    ]
    decision = gate(world, "better", policy(), behaviour=results)
    assert not decision.promote and "invariance:x" in decision.reason and "12.00%" in decision.reason
    assert decision.behaviour["golden"]["passed"]


def test_accuracy_reports_mcnemar(world):
    decision = gate(world, "better", policy(primary_metric="accuracy"))
    m = decision.comparison["mcnemar"]
    assert m["method"] == "chi2" and m["b"] > m["c"] and m["p_value"] < 0.001
    assert "McNemar" in decision.reason
    assert "gate.mcnemar_p_value" in decision.to_tags()


def test_lower_is_better_primary_metric(world):
    assert gate(world, "better", policy(primary_metric="log_loss")).promote
    assert not gate(world, "worse", policy(primary_metric="log_loss")).promote


def _paired(b, c, same=20):
    y = np.ones(b + c + same, dtype=int)
    pred_a = np.r_[np.ones(b), np.zeros(c), np.ones(same)]
    pred_b = np.r_[np.zeros(b), np.ones(c), np.ones(same)]
    return y, pred_a, pred_b


def test_mcnemar_exact_matches_hand_computation():
    result = mcnemar(*_paired(10, 2))
    # two-sided exact binomial: 2 * (C(12,0) + C(12,1) + C(12,2)) / 2**12 = 158 / 4096
    assert result["method"] == "exact" and (result["b"], result["c"]) == (10, 2)
    assert result["p_value"] == pytest.approx(158 / 4096)
    assert result["p_value"] == pytest.approx(stats.binomtest(2, 12, 0.5).pvalue)


def test_mcnemar_chi2_matches_hand_computation():
    result = mcnemar(*_paired(30, 15))
    # (|30 - 15| - 1)^2 / 45 = 196 / 45 = 4.3556; chi2(1) survival = 0.03689
    assert result["method"] == "chi2"
    assert result["statistic"] == pytest.approx(196 / 45)
    assert result["p_value"] == pytest.approx(0.036888, abs=1e-5)
    assert result["p_value"] == pytest.approx(stats.chi2.sf(196 / 45, 1))
    assert mcnemar(*_paired(0, 0))["p_value"] == 1.0


def test_bootstrap_is_deterministic_per_seed(world):
    args = {"metric": "roc_auc", "threshold": 0.5, "n_resamples": 200, "confidence": 0.9}
    y, a, b = world["y"], world["better"], world["champion"]
    first = paired_bootstrap(y, a, b, seed=5, **args)
    assert first == paired_bootstrap(y, a, b, seed=5, **args)
    other = paired_bootstrap(y, a, b, seed=6, **args)
    assert (other["ci_low"], other["ci_high"]) != (first["ci_low"], first["ci_high"])
    assert first["diff"] == other["diff"]


def test_bootstrap_skips_single_class_resamples():
    y = np.r_[np.zeros(9, dtype=int), 1]
    p = np.linspace(0.1, 0.9, 10)
    result = paired_bootstrap(y, p, p[::-1], metric="roc_auc", threshold=0.5, n_resamples=300, seed=0, confidence=0.95)
    assert 0 < result["n_valid"] < 300  # about (9/10)^10 = 35% of resamples lack the positive
    with pytest.raises(ValueError, match="both classes"):
        paired_bootstrap(np.zeros(10), p, p, metric="roc_auc", threshold=0.5, n_resamples=10, seed=0, confidence=0.9)


@pytest.mark.parametrize("metric", ["roc_auc", "pr_auc", "f1", "accuracy", "balanced_accuracy", "log_loss", "brier"])
@pytest.mark.parametrize("tied", [True, False])
def test_weighted_metrics_match_sklearn(world, metric, tied):
    """Point estimates equal binary_metrics; one resample's counts give sklearn's value on that resample."""
    y, p = world["y"], np.round(world["champion"], 2) if tied else world["champion"]
    score = _scorer(metric, y.astype(float), p, 0.5)
    assert score(np.ones((N, 1)))[0] == pytest.approx(binary_metrics(y, p, 0.5)[metric], abs=1e-9)
    idx = np.random.default_rng(0).integers(0, N, N)
    counts = np.bincount(idx, minlength=N).astype(float)[:, None]
    expected = binary_metrics(y[idx], p[idx], 0.5)[metric]
    assert score(counts)[0] == pytest.approx(expected, abs=1e-9)


def test_decision_records_as_strings_and_dict(world):
    decision = gate(world, "better", policy(thresholds={"roc_auc": 0.8}))
    tags = decision.to_tags()
    assert tags and all(isinstance(k, str) and k.startswith("gate.") for k in tags)
    assert all(isinstance(v, str) and len(v) <= 500 for v in tags.values())
    assert tags["gate.decision"] == "promote" and tags["gate.challenger_version"] == "7"
    assert tags["gate.threshold.roc_auc"].startswith("pass")
    as_dict = json.loads(json.dumps(decision.to_dict()))  # plain data all the way down
    assert as_dict["comparison"]["metric"] == "roc_auc" and as_dict["promote"] is True
    lines = decision.summary_lines()
    assert lines[0].startswith("PROMOTE") and any(line.startswith("threshold roc_auc") for line in lines)


def test_policy_validation():
    with pytest.raises(ValueError, match="primary_metric"):
        GatePolicy(primary_metric="recall")
    with pytest.raises(ValueError, match="policy"):
        GatePolicy(primary_metric="roc_auc", policy="better")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="confidence"):
        GatePolicy(primary_metric="roc_auc", confidence=95)
    assert math.isclose(GatePolicy(primary_metric="f1").confidence, 0.95)


def _row_level_bootstrap(y, a, b, metric, n_resamples, seed):
    """The bootstrap as first written: one count per row and resample, the same draws."""
    y = y.astype(float)
    score_a, score_b = _scorer(metric, y, a, 0.5), _scorer(metric, y, b, 0.5)
    rng, n = np.random.default_rng(seed), len(y)
    chunk = max(1, 1_000_000 // n)
    diffs = []
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        flat = rng.integers(0, n, size=(size, n)) * size + np.arange(size)[:, None]
        w = np.bincount(flat.ravel(), minlength=n * size).reshape(n, size).astype(float)
        n_pos = y @ w
        valid = (n_pos > 0) & (n_pos < n)
        w = w if valid.all() else w[:, valid]
        diffs.append(score_a(w) - score_b(w))
    return np.concatenate(diffs)


@pytest.mark.parametrize("metric", ["roc_auc", "pr_auc", "f1", "accuracy", "balanced_accuracy", "log_loss", "brier"])
@pytest.mark.parametrize("tied", [True, False])
def test_bootstrap_over_distinct_rows_equals_row_level(world, metric, tied):
    """Counting draws per distinct (label, a, b) row changes nothing but the cost."""
    y, a, b = world["y"], world["better"], world["champion"]
    if tied:  # few distinct scores, many repeated rows: what tabular models give
        a, b = np.round(a, 1), np.round(b, 1)
    result = paired_bootstrap(y, a, b, metric=metric, threshold=0.5, n_resamples=150, seed=2, confidence=0.9)
    d = _row_level_bootstrap(y, a, b, metric, 150, 2)
    low, high = np.quantile(d, [0.05, 0.95])
    exact = metric not in ("log_loss", "brier")  # those sum floats: equal up to rounding
    assert result["n_valid"] == d.size
    if exact:
        assert (result["ci_low"], result["ci_high"]) == (low, high)
    else:
        assert result["ci_low"] == pytest.approx(low, abs=1e-12) and result["ci_high"] == pytest.approx(high, abs=1e-12)


def _against_prior(world, challenger, pol):
    prior = np.full(N, world["y"].mean())
    return decide(
        challenger_metrics=binary_metrics(world["y"], world[challenger], 0.5),
        policy=pol,
        y_true=world["y"],
        challenger_proba=world[challenger],
        baseline_proba=prior,
    )


def test_without_thresholds_a_useful_model_beats_the_prior_and_says_so(world):
    decision = _against_prior(world, "worse", policy(policy="non_inferior", margin=0.5))
    assert decision.promote, decision.reason
    assert decision.baseline["passed"] and decision.baseline["champion"] == pytest.approx(0.5)
    assert "beats the baseline" in decision.reason
    assert decision.to_tags()["gate.baseline"].startswith("pass roc_auc")
    assert json.loads(json.dumps(decision.to_dict()))["baseline"]["against"] == "class-prior baseline"
    assert any("class-prior baseline" in line for line in decision.summary_lines())


def test_without_thresholds_a_model_no_better_than_the_prior_is_kept(world):
    noise = {**world, "noise": world["rng"].random(N)}
    decision = _against_prior(noise, "noise", policy())
    assert not decision.promote
    assert decision.reason.startswith("kept: no better than the baseline")
    assert decision.to_tags()["gate.baseline"].startswith("fail")


def test_the_baseline_is_beaten_on_a_lower_is_better_metric_too(world):
    decision = _against_prior(world, "better", policy(primary_metric="log_loss"))
    assert decision.promote and decision.baseline["higher_is_better"] is False
    assert decision.baseline["challenger"] < decision.baseline["champion"]


def test_configured_thresholds_replace_the_baseline_gate(world):
    decision = _against_prior(world, "better", policy(thresholds={"roc_auc": 0.5}))
    assert decision.baseline is None and "gate.baseline" not in decision.to_tags()
