"""The promotion gate: absolute thresholds, behaviour tests, a paired test against the champion, slices.

Data with no known bar (no thresholds configured) must instead beat a trivial baseline, the class
prior, by the same paired bootstrap: a model no better than always answering the base rate is kept.

Pure logic over predictions already made on the same held-out rows; the
registry step records the :class:`PromotionDecision` as tags, a driver stops
the run when it says keep.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np

from components.evaluation.metrics import HIGHER_IS_BETTER

BOOTSTRAP_METRICS = ("roc_auc", "pr_auc", "f1", "accuracy", "balanced_accuracy", "log_loss", "brier")
POLICIES = ("superior", "non_inferior")
_CHUNK_CELLS = 1_000_000  # resample counts held at once (rows x resamples), 8 MB of float64
_EXACT_MCNEMAR_BELOW = 25  # discordant pairs; the chi-squared approximation is poor below this


@dataclass(frozen=True)
class GatePolicy:
    """How a challenger must compare with the champion to be promoted."""

    primary_metric: str
    policy: Literal["superior", "non_inferior"] = "superior"
    margin: float = 0.0
    n_resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0
    max_slice_drop: float = 0.05
    thresholds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.primary_metric not in BOOTSTRAP_METRICS:
            raise ValueError(f"primary_metric {self.primary_metric!r} not one of {', '.join(BOOTSTRAP_METRICS)}")
        if self.policy not in POLICIES:
            raise ValueError(f"policy {self.policy!r} not one of {', '.join(POLICIES)}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must lie in (0, 1), got {self.confidence}")
        if self.n_resamples < 1 or self.margin < 0 or self.max_slice_drop < 0:
            raise ValueError("n_resamples must be >= 1, margin and max_slice_drop >= 0")


@dataclass(frozen=True)
class PromotionDecision:
    """The verdict, why, and every number it rests on."""

    promote: bool
    reason: str
    challenger_version: str | None
    champion_version: str | None
    thresholds: dict[str, dict[str, Any]]
    comparison: dict[str, Any] | None
    slices: dict[str, dict[str, Any]] | None
    behaviour: dict[str, dict[str, Any]] | None
    baseline: dict[str, Any] | None = None  # the paired test against the class prior (no thresholds set)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_tags(self) -> dict[str, str]:
        """Flat ``gate.*`` tags with short string values, for MLflow."""
        tags = {
            "gate.decision": "promote" if self.promote else "keep",
            "gate.reason": _clip(self.reason, 500),
        }
        for key in ("challenger_version", "champion_version"):
            if getattr(self, key) is not None:
                tags[f"gate.{key}"] = str(getattr(self, key))
        for name, t in self.thresholds.items():
            tags[f"gate.threshold.{name}"] = (
                f"{'pass' if t['passed'] else 'fail'} {_fmt(t['value'])} {t['op']} {t['bound']}"
            )
        if self.baseline is not None:
            b = self.baseline
            tags["gate.baseline"] = (
                f"{'pass' if b['passed'] else 'fail'} {b['metric']} {b['challenger']:.4g} vs {b['against']} "
                f"{b['champion']:.4g}, CI [{b['ci_low']:.4g}, {b['ci_high']:.4g}] at {b['confidence']}"
            )
        c = self.comparison
        if c is not None:
            tags.update(
                {
                    "gate.metric": c["metric"],
                    "gate.policy": c["policy"] if c["policy"] == "superior" else f"{c['policy']} {c['margin']}",
                    "gate.diff": f"{c['diff']:.4g}",
                    "gate.ci": f"[{c['ci_low']:.4g}, {c['ci_high']:.4g}] at {c['confidence']}",
                    "gate.p_value": _p(c["p_value"]),
                    "gate.n_resamples": f"{c['n_valid']}/{c['n_resamples']}",
                }
            )
            if c.get("mcnemar"):
                tags["gate.mcnemar_p_value"] = _p(c["mcnemar"]["p_value"])
        if self.slices is not None:
            failed = [k for k, s in self.slices.items() if not s["passed"]]
            tags["gate.slices"] = _clip(f"{len(self.slices)} checked; failed: {', '.join(failed) or 'none'}", 250)
        if self.behaviour is not None:
            failed = [k for k, b in self.behaviour.items() if not b["passed"]]
            tags["gate.behaviour"] = _clip(f"{len(self.behaviour)} run; failed: {', '.join(failed) or 'none'}", 250)
        return tags

    def summary_lines(self) -> list[str]:
        """Readable lines for logs and a Prefect artifact; the first is the verdict."""
        lines = [f"{'PROMOTE' if self.promote else 'KEEP'}: {self.reason}"]
        for name, t in self.thresholds.items():
            state = "pass" if t["passed"] else "FAIL"
            lines.append(f"threshold {name}: {_fmt(t['value'])} {t['op']} {t['bound']} {state}")
        if self.baseline is not None:
            lines.append(_comparison_text(self.baseline))
        if self.behaviour is not None:
            for name, b in self.behaviour.items():
                lines.append(f"behaviour {name}: {'pass' if b['passed'] else 'FAIL'}: {b['detail']}")
        if self.comparison is not None:
            lines.append(_comparison_text(self.comparison))
        if self.slices is not None:
            failed = [k for k, s in self.slices.items() if not s["passed"]]
            lines.append(f"slices: {len(self.slices)} compared, {len(failed)} regressed")
            lines += [_slice_text(k, self.slices[k]) for k in failed]
        return lines


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _scorer(metric: str, y: np.ndarray, proba: np.ndarray, threshold: float) -> Callable[[np.ndarray], np.ndarray]:
    """``metric`` as a function of bootstrap counts ``w`` (rows x resamples), one value per resample.

    Sorting and per-row terms are computed once here, not once per resample.
    """
    if metric in ("roc_auc", "pr_auc"):
        order = np.argsort(-proba if metric == "pr_auc" else proba, kind="stable")
        ranked, ys = proba[order], y[order][:, None]
        starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])  # one group per distinct score
        tied = len(starts) < len(ranked)

        def ranking(w: np.ndarray) -> np.ndarray:
            ws = w[order]
            pos = ws * ys
            neg = ws - pos
            if tied:  # pool each group of equal scores, as sklearn does
                pos, neg = np.add.reduceat(pos, starts, axis=0), np.add.reduceat(neg, starts, axis=0)
            if metric == "roc_auc":  # Mann-Whitney: negatives ranked below count 1, tied ones 1/2
                below = np.cumsum(neg, axis=0, out=None if tied else neg)
                n_neg = below[-1].copy()
                if tied:
                    below -= 0.5 * neg
                return np.einsum("ij,ij->j", pos, below) / ((ws.sum(axis=0) - n_neg) * n_neg)
            tp, seen = np.cumsum(pos, axis=0), np.cumsum(ws if not tied else pos + neg, axis=0)
            precision = np.divide(tp, seen, out=np.zeros_like(tp), where=seen > 0)
            return np.einsum("ij,ij->j", pos, precision) / tp[-1]  # average precision, as sklearn defines it

        return ranking
    if metric in ("log_loss", "brier"):
        p = np.clip(proba, 1e-15, 1 - 1e-15)
        loss = -(y * np.log(p) + (1 - y) * np.log1p(-p)) if metric == "log_loss" else (p - y) ** 2
        return lambda w: loss @ w / w.sum(axis=0)
    if metric not in BOOTSTRAP_METRICS:
        raise ValueError(f"no paired test for metric {metric!r}; known: {', '.join(BOOTSTRAP_METRICS)}")
    pred = (proba >= threshold).astype(np.float64)
    cells = np.stack([pred * y, pred * (1 - y), (1 - pred) * y, (1 - pred) * (1 - y)])  # tp, fp, fn, tn

    def counting(w: np.ndarray) -> np.ndarray:
        tp, fp, fn, tn = cells @ w
        if metric == "accuracy":
            return (tp + tn) / (tp + fp + fn + tn)
        if metric == "f1":
            den = 2 * tp + fp + fn
            return np.divide(2 * tp, den, out=np.zeros_like(den), where=den > 0)
        return 0.5 * (tp / (tp + fn) + tn / (tn + fp))  # balanced accuracy

    return counting


def _resample_counts(rng: np.random.Generator, n: int, size: int, groups: np.ndarray, m: int) -> np.ndarray:
    """How often each of ``m`` row groups is drawn in each of ``size`` resamples (groups x resamples).

    ``groups`` maps each of the ``n`` rows to its group; rows are drawn uniformly, as always.
    """
    draws = groups[rng.integers(0, n, size=(size, n))]  # a new array: safe to work on in place
    if size > 1:
        draws *= size
        draws += np.arange(size)[:, None]
    return np.bincount(draws.ravel(), minlength=m * size).reshape(m, size).astype(np.float64)


def _distinct_rows(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One representative row per distinct combination of ``columns``, and each row's group.

    Rows that agree on the label and both scores are interchangeable for every metric here,
    so a resample only needs how often each combination was drawn. A model's scores take
    few distinct values on tabular data (tens of thousands over a million rows is common).
    """
    groups = np.zeros(len(columns[0]), dtype=np.int64)
    first = np.zeros(1, dtype=np.int64)
    for column in columns:
        _, codes = np.unique(column, return_inverse=True)
        pair = groups * (int(codes.max()) + 1) + codes.reshape(-1)  # below n**2: no int64 overflow
        _, first, groups = np.unique(pair, return_index=True, return_inverse=True)
    order = np.argsort(first)  # groups in order of first appearance: no ties, no reordering at all
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return first[order], rank[groups.reshape(-1)]


def paired_bootstrap(
    y_true: np.ndarray,
    proba_a: np.ndarray,
    proba_b: np.ndarray,
    *,
    metric: str,
    threshold: float,
    n_resamples: int,
    seed: int,
    confidence: float,
) -> dict[str, Any]:
    """Percentile CI of ``metric(a) - metric(b)`` over the same resampled rows.

    Resamples are drawn as count vectors, so every metric, ROC AUC included,
    is computed for a whole chunk of resamples with array operations. Counts
    are kept per distinct (label, score a, score b) row rather than per row:
    the same draws give the same values (exactly; log loss and Brier, which
    sum floats, up to rounding) at a cost per resample that follows the
    number of distinct rows. Single-class resamples
    are skipped (``n_valid`` says how many remain). ``p_value`` is one-sided:
    the share of resamples where a is not better than b.
    """
    if metric not in BOOTSTRAP_METRICS:
        raise ValueError(f"no paired test for metric {metric!r}; known: {', '.join(BOOTSTRAP_METRICS)}")
    y = np.asarray(y_true).astype(np.float64)
    a, b = np.asarray(proba_a, dtype=np.float64), np.asarray(proba_b, dtype=np.float64)
    if not len(y) == len(a) == len(b) or len(y) == 0:
        raise ValueError(f"y_true ({len(y)}), proba_a ({len(a)}), proba_b ({len(b)}) must be equal and non-empty")
    if y.min() == y.max():
        raise ValueError(f"{metric} needs both classes in y_true; all rows are {int(y[0])}")
    n = len(y)
    one = np.ones((n, 1))
    value_a, value_b = (float(_scorer(metric, y, p, threshold)(one)[0]) for p in (a, b))
    first, groups = _distinct_rows(y, a, b)
    y_d = y[first]
    score_a, score_b = (_scorer(metric, y_d, p[first], threshold) for p in (a, b))
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // n)
    diffs = []
    for start in range(0, n_resamples, chunk):
        w = _resample_counts(rng, n, min(chunk, n_resamples - start), groups, len(first))
        n_pos = y_d @ w
        valid = (n_pos > 0) & (n_pos < n)
        w = w if valid.all() else w[:, valid]
        diffs.append(score_a(w) - score_b(w))
    d = np.concatenate(diffs) if diffs else np.empty(0)
    if d.size == 0:
        raise ValueError("every bootstrap resample held a single class; is y_true all one class?")
    alpha = 1 - confidence
    low, high = np.quantile(d, [alpha / 2, 1 - alpha / 2])
    not_better = d <= 0 if HIGHER_IS_BETTER.get(metric, True) else d >= 0
    return {
        "method": "paired_bootstrap",
        "metric": metric,
        "a": value_a,
        "b": value_b,
        "diff": value_a - value_b,
        "ci_low": float(low),
        "ci_high": float(high),
        "confidence": confidence,
        "p_value": float((not_better.sum() + 1) / (d.size + 1)),
        "n_resamples": n_resamples,
        "n_valid": int(d.size),
        "seed": seed,
    }


def mcnemar(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict[str, Any]:
    """McNemar's test on paired predictions: exact binomial below 25 discordant pairs, else chi2 (corrected).

    ``b``: rows a gets right and b wrong; ``c``: the reverse. Two-sided p-value.
    """
    y = np.asarray(y_true).astype(int)
    right_a = np.asarray(pred_a).astype(int) == y
    right_b = np.asarray(pred_b).astype(int) == y
    b, c = int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b))
    n = b + c
    if n == 0:
        return {"method": "exact", "b": 0, "c": 0, "statistic": 0.0, "p_value": 1.0}
    if n < _EXACT_MCNEMAR_BELOW:
        tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
        return {
            "method": "exact",
            "b": b,
            "c": c,
            "statistic": float(min(b, c)),
            "p_value": min(1.0, 2 * tail),
        }
    statistic = (abs(b - c) - 1) ** 2 / n
    # chi-squared survival with one degree of freedom: P(Z^2 > x) = erfc(sqrt(x / 2))
    return {
        "method": "chi2",
        "b": b,
        "c": c,
        "statistic": statistic,
        "p_value": math.erfc(math.sqrt(statistic / 2)),
    }


def _check_thresholds(metrics: Mapping[str, float], thresholds: Mapping[str, float]) -> dict[str, dict[str, Any]]:
    checked = {}
    for name, bound in thresholds.items():
        higher = HIGHER_IS_BETTER.get(name, True)
        value = metrics.get(name)
        passed = bool(value is not None and (value >= bound if higher else value <= bound))
        value = None if value is None else float(value)
        checked[name] = {
            "value": value,
            "bound": float(bound),
            "op": ">=" if higher else "<=",
            "passed": passed,
        }
    return checked


def _compare(policy: GatePolicy, y, challenger, champion, threshold: float) -> dict[str, Any]:
    boot = paired_bootstrap(
        y,
        challenger,
        champion,
        metric=policy.primary_metric,
        threshold=threshold,
        n_resamples=policy.n_resamples,
        seed=policy.seed,
        confidence=policy.confidence,
    )
    higher = HIGHER_IS_BETTER.get(policy.primary_metric, True)
    gain_low = boot["ci_low"] if higher else -boot["ci_high"]  # lower bound of the improvement
    bar = 0.0 if policy.policy == "superior" else -policy.margin
    result = {
        "metric": policy.primary_metric,
        "challenger": boot["a"],
        "champion": boot["b"],
        **{k: boot[k] for k in ("diff", "ci_low", "ci_high", "confidence", "p_value", "n_resamples", "n_valid")},
        "seed": policy.seed,
        "policy": policy.policy,
        "margin": policy.margin,
        "higher_is_better": higher,
        "passed": bool(gain_low > bar),
        "mcnemar": None,
    }
    if policy.primary_metric == "accuracy":
        pred_a, pred_b = (np.asarray(p) >= threshold for p in (challenger, champion))
        result["mcnemar"] = mcnemar(y, pred_a, pred_b)
    return result


def _compare_slices(challenger: Mapping, champion: Mapping, policy: GatePolicy) -> dict[str, dict[str, Any]]:
    """Primary metric per slice present in both; accuracy where it is undefined (one-class slice)."""
    compared = {}
    for key in (k for k in challenger if k in champion):
        mine, theirs = challenger[key], champion[key]
        metric = policy.primary_metric
        if mine.get(metric) is None or theirs.get(metric) is None:
            metric = "accuracy"
        new, old = float(mine[metric]), float(theirs[metric])
        drop = old - new if HIGHER_IS_BETTER.get(metric, True) else new - old
        passed = bool(drop <= policy.max_slice_drop + 1e-12)
        compared[key] = {"metric": metric, "challenger": new, "champion": old, "drop": drop, "passed": passed}
    return compared


def _p(value: float) -> str:
    return f"{value:.2g}" if value >= 1e-4 else "<0.0001"


def _p_text(value: float) -> str:
    return f"p={_p(value)}" if value >= 1e-4 else "p<0.0001"


def _signed(value: float) -> str:
    """A difference with its sign; tiny ones in scientific notation so they do not read as zero."""
    return f"{value:+.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:+.2e}"


def _comparison_text(c: Mapping[str, Any]) -> str:
    text = (
        f"challenger {c['metric']} {c['challenger']:.4f} vs {c.get('against', 'champion')} {c['champion']:.4f} "
        f"(diff {_signed(c['diff'])}, "
        f"{c['confidence']:.0%} CI [{_signed(c['ci_low'])}, {_signed(c['ci_high'])}], "
        f"one-sided {_p_text(c['p_value'])}, {c['n_valid']} paired bootstrap resamples"
    )
    if c.get("mcnemar"):
        m = c["mcnemar"]
        text += f"; McNemar b={m['b']} c={m['c']} {_p_text(m['p_value'])}"
    return text + ")"


def _slice_text(key: str, s: Mapping[str, Any]) -> str:
    return f"slice '{key}': {s['metric']} {s['challenger']:.4f} vs champion {s['champion']:.4f} (drop {s['drop']:.4f})"


def _beats_text(c: Mapping[str, Any], bar: float) -> str:
    gain_low = c["ci_low"] if c["higher_is_better"] else -c["ci_high"]
    return f"the lower CI bound of the improvement, {_signed(gain_low)}, is not above {bar:+.4f}"


def _verdict(thresholds, baseline, behaviour, comparison, slices, policy: GatePolicy) -> tuple[bool, str]:
    """The first failing check, in the documented order, as a sentence with its numbers."""
    failed = [
        f"{n}={_fmt(t['value'])}, required {t['op']} {t['bound']}" for n, t in thresholds.items() if not t["passed"]
    ]
    if failed:
        return False, "kept: threshold not met: " + "; ".join(failed)
    if baseline is not None and not baseline["passed"]:
        return False, f"kept: no better than the baseline: {_comparison_text(baseline)}; {_beats_text(baseline, 0.0)}"
    bad = [f"{n} ({b['detail']})" for n, b in (behaviour or {}).items() if not b["passed"]]
    if bad:
        return False, "kept: behaviour test failed: " + "; ".join(bad)
    held = ", ".join(f"{n}={_fmt(t['value'])} {t['op']} {t['bound']}" for n, t in thresholds.items())
    held = f"thresholds hold ({held})" if held else "no thresholds configured"
    if baseline is not None:
        held = f"no thresholds configured, beats the baseline: {_comparison_text(baseline)}"
    if comparison is None:
        return (
            True,
            f"promoted: no champion to compare against, so promoted on absolute thresholds alone; {held}"
            if baseline is None
            else f"promoted: no champion to compare against; {held}",
        )
    claim = "superior" if policy.policy == "superior" else f"non-inferior within margin {policy.margin}"
    if not comparison["passed"]:
        bar = 0.0 if policy.policy == "superior" else -policy.margin
        return False, f"kept: {_comparison_text(comparison)} is not {claim}: {_beats_text(comparison, bar)}"
    worst = sorted((k for k, s in (slices or {}).items() if not s["passed"]), key=lambda k: -slices[k]["drop"])
    if worst:
        detail = "; ".join(_slice_text(k, slices[k]) for k in worst)
        return False, f"kept: better overall but drops more than {policy.max_slice_drop} on {detail}"
    return True, f"promoted: {_comparison_text(comparison)} is {claim}; {held}"


def _behaviour_table(results: Sequence[Any]) -> dict[str, dict[str, Any]]:
    table = {}
    for r in results:
        item = r.to_dict() if hasattr(r, "to_dict") else dict(r)
        table[item["name"]] = {k: item.get(k) for k in ("kind", "passed", "detail", "numbers")}
    return table


def decide(
    *,
    challenger_metrics: Mapping[str, float],
    policy: GatePolicy,
    y_true: np.ndarray | None = None,
    challenger_proba: np.ndarray | None = None,
    champion_proba: np.ndarray | None = None,
    baseline_proba: np.ndarray | None = None,
    challenger_slices: Mapping[str, Mapping[str, Any]] | None = None,
    champion_slices: Mapping[str, Mapping[str, Any]] | None = None,
    behaviour: Sequence[Any] | None = None,
    challenger_version: str | None = None,
    champion_version: str | None = None,
    threshold: float = 0.5,
) -> PromotionDecision:
    """Promote or keep. Every check given is run and recorded; the reason names the first that fails,
    in this order: thresholds (or, with none configured, the baseline), behaviour, paired test against
    the champion, slices. ``baseline_proba`` is a trivial model's answer on the same rows (the class prior)."""
    thresholds = _check_thresholds(challenger_metrics, policy.thresholds)
    behaviour_table = None if behaviour is None else _behaviour_table(behaviour)
    comparison = slices = baseline = None
    if baseline_proba is not None and not policy.thresholds:
        if y_true is None or challenger_proba is None:
            raise ValueError("the baseline gate needs y_true and challenger_proba on the same rows")
        # Beating the prior is a claim of superiority whatever the champion policy says.
        baseline = _compare(replace(policy, policy="superior"), y_true, challenger_proba, baseline_proba, threshold)
        baseline["against"] = "class-prior baseline"
    if champion_proba is not None:
        if y_true is None or challenger_proba is None:
            raise ValueError("comparing with a champion needs y_true and challenger_proba on the same rows")
        comparison = _compare(policy, y_true, challenger_proba, champion_proba, threshold)
        if challenger_slices is not None and champion_slices is not None:
            slices = _compare_slices(challenger_slices, champion_slices, policy)
    promote, reason = _verdict(thresholds, baseline, behaviour_table, comparison, slices, policy)
    return PromotionDecision(
        promote=promote,
        reason=reason,
        challenger_version=challenger_version,
        champion_version=champion_version,
        thresholds=thresholds,
        comparison=comparison,
        slices=slices,
        behaviour=behaviour_table,
        baseline=baseline,
    )
