"""The promotion gate: absolute thresholds, behaviour tests, a paired test against the champion, slices.

Data with no known bar (no thresholds configured) must instead beat a trivial baseline, the class
prior (classifiers) or the training mean (regression), by the same paired bootstrap: a model no better
than always answering the base rate or the mean is kept. Every task's metrics work in every check,
lower-is-better ones (losses, errors) included.

Pure logic over predictions already made on the same held-out rows; the
registry step records the :class:`PromotionDecision` as tags, a driver stops
the run when it says keep. The tests themselves (paired bootstrap, McNemar) are
in :mod:`components.release.gate_statistics`; this module decides what they mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np

from components.model.tasks import BINARY, REGRESSION, check_task, is_classification
from components.release.gate_statistics import BOOTSTRAP_METRICS, mcnemar, paired_bootstrap, predicted_labels
from components.release.gate_text import beats_text, clip, comparison_text, fmt, p_short, slice_text
from components.vocabulary import TASK_METRICS, higher_is_better

POLICIES = ("superior", "non_inferior")


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
            "gate.reason": clip(self.reason, 500),
        }
        for key in ("challenger_version", "champion_version"):
            if getattr(self, key) is not None:
                tags[f"gate.{key}"] = str(getattr(self, key))
        for name, t in self.thresholds.items():
            tags[f"gate.threshold.{name}"] = (
                f"{'pass' if t['passed'] else 'fail'} {fmt(t['value'])} {t['op']} {t['bound']}"
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
                    "gate.p_value": p_short(c["p_value"]),
                    "gate.n_resamples": f"{c['n_valid']}/{c['n_resamples']}",
                }
            )
            if c.get("mcnemar"):
                tags["gate.mcnemar_p_value"] = p_short(c["mcnemar"]["p_value"])
        if self.slices is not None:
            failed = [k for k, s in self.slices.items() if not s["passed"]]
            tags["gate.slices"] = clip(f"{len(self.slices)} checked; failed: {', '.join(failed) or 'none'}", 250)
        if self.behaviour is not None:
            failed = [k for k, b in self.behaviour.items() if not b["passed"]]
            tags["gate.behaviour"] = clip(f"{len(self.behaviour)} run; failed: {', '.join(failed) or 'none'}", 250)
        return tags

    def summary_lines(self) -> list[str]:
        """Readable lines for logs and a Prefect artifact; the first is the verdict."""
        lines = [f"{'PROMOTE' if self.promote else 'KEEP'}: {self.reason}"]
        for name, t in self.thresholds.items():
            state = "pass" if t["passed"] else "FAIL"
            lines.append(f"threshold {name}: {fmt(t['value'])} {t['op']} {t['bound']} {state}")
        if self.baseline is not None:
            lines.append(comparison_text(self.baseline))
        if self.behaviour is not None:
            for name, b in self.behaviour.items():
                lines.append(f"behaviour {name}: {'pass' if b['passed'] else 'FAIL'}: {b['detail']}")
        if self.comparison is not None:
            lines.append(comparison_text(self.comparison))
        if self.slices is not None:
            failed = [k for k, s in self.slices.items() if not s["passed"]]
            lines.append(f"slices: {len(self.slices)} compared, {len(failed)} regressed")
            lines += [slice_text(k, self.slices[k]) for k in failed]
        return lines


def _check_thresholds(metrics: Mapping[str, float], thresholds: Mapping[str, float]) -> dict[str, dict[str, Any]]:
    checked = {}
    for name, bound in thresholds.items():
        higher = higher_is_better(name)
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


def _compare(policy: GatePolicy, y, challenger, champion, threshold: float, task: str) -> dict[str, Any]:
    boot = paired_bootstrap(
        y,
        challenger,
        champion,
        metric=policy.primary_metric,
        threshold=threshold,
        n_resamples=policy.n_resamples,
        seed=policy.seed,
        confidence=policy.confidence,
        task=task,
    )
    higher = higher_is_better(policy.primary_metric)
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
    if policy.primary_metric == "accuracy" and is_classification(task):
        pred_a, pred_b = (predicted_labels(task, p, threshold) for p in (challenger, champion))
        result["mcnemar"] = mcnemar(y, pred_a, pred_b)
    return result


def _compare_slices(challenger: Mapping, champion: Mapping, policy: GatePolicy, task: str) -> dict[str, dict[str, Any]]:
    """Primary metric per slice present in both; where a slice lacks it (undefined, such as ROC AUC on a
    one-class slice, or not computed per slice) a metric every slice has: accuracy, or MAE for regression.

    The drop is in the metric's units, except for errors in the target's units (RMSE, MAE): there it is
    a fraction of the champion's error, so one ``max_slice_drop`` fits any target's scale.
    """
    fallback = "mae" if task == REGRESSION else "accuracy"
    compared = {}
    for key in (k for k in challenger if k in champion):
        mine, theirs = challenger[key], champion[key]
        metric = policy.primary_metric
        if mine.get(metric) is None or theirs.get(metric) is None:
            metric = fallback
        new, old = float(mine[metric]), float(theirs[metric])
        drop = old - new if higher_is_better(metric) else new - old
        relative = metric in _IN_TARGET_UNITS and old > 0
        drop = drop / old if relative else drop
        passed = bool(drop <= policy.max_slice_drop + 1e-12)
        compared[key] = {"metric": metric, "challenger": new, "champion": old, "drop": drop, "passed": passed}
        if relative:  # only then: classification records stay as they were
            compared[key]["relative"] = True
    return compared


_IN_TARGET_UNITS = ("rmse", "mae")  # slice drops measured relative to the champion's value


def _verdict(thresholds, baseline, behaviour, comparison, slices, policy: GatePolicy) -> tuple[bool, str]:
    """The first failing check, in the documented order, as a sentence with its numbers."""
    failed = [
        f"{n}={fmt(t['value'])}, required {t['op']} {t['bound']}" for n, t in thresholds.items() if not t["passed"]
    ]
    if failed:
        return False, "kept: threshold not met: " + "; ".join(failed)
    if baseline is not None and not baseline["passed"]:
        return False, f"kept: no better than the baseline: {comparison_text(baseline)}; {beats_text(baseline, 0.0)}"
    bad = [f"{n} ({b['detail']})" for n, b in (behaviour or {}).items() if not b["passed"]]
    if bad:
        return False, "kept: behaviour test failed: " + "; ".join(bad)
    held = ", ".join(f"{n}={fmt(t['value'])} {t['op']} {t['bound']}" for n, t in thresholds.items())
    held = f"thresholds hold ({held})" if held else "no thresholds configured"
    if baseline is not None:
        held = f"no thresholds configured, beats the baseline: {comparison_text(baseline)}"
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
        return False, f"kept: {comparison_text(comparison)} is not {claim}: {beats_text(comparison, bar)}"
    worst = sorted((k for k, s in (slices or {}).items() if not s["passed"]), key=lambda k: -slices[k]["drop"])
    if worst:
        detail = "; ".join(slice_text(k, slices[k]) for k in worst)
        return False, f"kept: better overall but drops more than {policy.max_slice_drop} on {detail}"
    return True, f"promoted: {comparison_text(comparison)} is {claim}; {held}"


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
    task: str = BINARY,
) -> PromotionDecision:
    """Promote or keep. Every check given is run and recorded; the reason names the first that fails,
    in this order: thresholds (or, with none configured, the baseline), behaviour, paired test against
    the champion, slices.

    The ``*_proba`` arguments hold ``task``'s scores (components.model.tasks) on the same rows and
    ``y_true`` the encoded target. ``baseline_proba`` is a model without features' answer on them
    (components.evaluation.metrics.baseline_scores: the class prior, or the training mean)."""
    if policy.primary_metric not in TASK_METRICS[check_task(task)]:
        raise ValueError(f"primary_metric {policy.primary_metric!r} is not a {task} metric; "
                         f"known: {', '.join(TASK_METRICS[task])}")  # fmt: skip
    thresholds = _check_thresholds(challenger_metrics, policy.thresholds)
    behaviour_table = None if behaviour is None else _behaviour_table(behaviour)
    comparison = slices = baseline = None
    if baseline_proba is not None and not policy.thresholds:
        if y_true is None or challenger_proba is None:
            raise ValueError("the baseline gate needs y_true and challenger_proba on the same rows")
        # Beating the prior is a claim of superiority whatever the champion policy says.
        baseline = _compare(
            replace(policy, policy="superior"), y_true, challenger_proba, baseline_proba, threshold, task
        )
        baseline["against"] = "class-prior baseline" if is_classification(task) else "training-mean baseline"
    if champion_proba is not None:
        if y_true is None or challenger_proba is None:
            raise ValueError("comparing with a champion needs y_true and challenger_proba on the same rows")
        comparison = _compare(policy, y_true, challenger_proba, champion_proba, threshold, task)
        if challenger_slices is not None and champion_slices is not None:
            slices = _compare_slices(challenger_slices, champion_slices, policy, task)
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
