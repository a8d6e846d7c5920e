"""The run summary: one markdown text printed, stored as a Prefect and an MLflow artifact."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from components import vocabulary as v

# The columns of the candidate table, per task (every metric is logged to MLflow either way).
SHOWN_METRICS = {
    "binary": ("roc_auc", "pr_auc", "f1", "accuracy", "log_loss"),
    "multiclass": ("f1_macro", "accuracy", "balanced_accuracy", "roc_auc_ovr", "log_loss"),
    "regression": ("rmse", "mae", "r2", "mape"),
}


@dataclass(frozen=True)
class RunSummary:
    dataset_path: str
    dataset_md5: str
    n_rows: int
    split_sizes: dict[str, int]
    validation: str
    candidates: dict[str, dict[str, float]]  # name -> validation metrics
    chosen: str | None
    test_metrics: dict[str, float] = field(default_factory=dict)
    registered_model: str | None = None
    version: str | None = None
    aliases: list[str] = field(default_factory=list)
    bento_tag: str | None = None
    decision: str = ""
    tracking_uri: str = ""
    run_id: str | None = None
    notes: list[str] = field(default_factory=list)
    gate: list[str] = field(default_factory=list)
    skipped: bool = False
    task: str = "binary"
    primary_metric: str | None = None
    params_option: str = ""  # how the "Next" commands name this project's params ("" at its root)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def params_option(root: Any) -> str:
    """``--params <folder>/params.yaml `` when the project is not the current folder (a pipeline folder such as
    pipelines/digits keeps its own store: commands without it would look in another)."""
    import os
    from pathlib import Path

    root, here = Path(root).resolve(), Path.cwd().resolve()
    if root == here:
        return ""
    shown = Path(os.path.relpath(root, here)) if root.is_relative_to(here) else root  # no ../../ climbing
    return f"--params {shown / 'params.yaml'} "


def redact_uri(uri: str) -> str:
    """Drop credentials (``user:password@``) from a URI before it is printed or stored."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return uri


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def render_markdown(s: RunSummary) -> str:
    if s.skipped:
        return f"# Training pipeline run: skipped\n\n- {s.decision}\n- dataset md5 `{s.dataset_md5}`\n"
    lines = [
        "# Training pipeline run",
        "",
        f"- dataset: `{s.dataset_path}` md5 `{s.dataset_md5}` ({s.n_rows} rows; "
        + ", ".join(f"{k} {v}" for k, v in s.split_sizes.items())
        + ")",
        f"- validation: {s.validation}",
    ]
    shown = SHOWN_METRICS[s.task]
    if s.primary_metric:
        direction = "higher" if v.higher_is_better(s.primary_metric) else "lower"
        lines.append(f"- task: {s.task}; candidates chosen and gated by {s.primary_metric} ({direction} is better)")
    lines += [
        "",
        "| candidate | " + " | ".join(f"val {m}" for m in shown) + " |",
        "|---|" + "---|" * len(shown),
    ]
    for name, metrics in s.candidates.items():
        mark = " (chosen)" if name == s.chosen else ""
        lines.append(f"| {name}{mark} | " + " | ".join(_fmt(metrics.get(m)) for m in shown) + " |")
    lines.append("")
    if s.test_metrics:
        lines.append("- held-out test: " + ", ".join(f"{m} {_fmt(s.test_metrics.get(m))}" for m in shown))
    if s.version:
        alias_text = ", ".join(f"@{a}" for a in s.aliases) or "no alias"
        lines.append(f"- registered: `{s.registered_model}` version {s.version} ({alias_text})")
    if s.bento_tag:
        lines.append(f"- bento: `{s.bento_tag}`")
    if s.decision:
        lines.append(f"- decision: {s.decision}")
    if s.gate:
        lines += ["", "Gate:"] + [f"- {g}" for g in s.gate]
    lines += [f"- note: {n}" for n in s.notes]
    if s.run_id:
        lines.append(f"- MLflow run: `{s.run_id}`")
    lines += [
        "",
        "Next:",
        f"- `mlflow ui --backend-store-uri {redact_uri(s.tracking_uri)}`" if s.tracking_uri else "- `mlflow ui`",
        f"- `mlops {s.params_option}status --model {s.registered_model}` to list its versions and aliases "
        f"(`mlops {s.params_option}status`: every model)",
        f"- `mlops {s.params_option}serve --model {s.registered_model}` to serve its champion's bento "
        "on 127.0.0.1:3000",
    ]
    return "\n".join(lines) + "\n"


def skipped_summary(ctx: Any, version: dict[str, Any], tracking_uri: str, champion: str | None = None) -> RunSummary:
    """Nothing changed since ``version`` (a row of registry.list_versions): train nothing, register nothing.
    ``champion``: the version holding the alias now, which the run leaves where it is."""
    alias = ctx.settings.promote.alias
    kept = f"@{alias} stays on v{champion}" if champion else f"no version holds @{alias}"
    note = (
        f"nothing changed since {ctx.name} v{version['version']} (same dataset md5, params and code: "
        f"fingerprint {ctx.fingerprint}); nothing trained or registered, {kept}. Use --force to train anyway."
    )
    return RunSummary(dataset_path=ctx.settings.data.path, dataset_md5=ctx.md5, n_rows=0, split_sizes={},
                      validation="skipped", candidates={}, chosen=None, registered_model=ctx.name,
                      version=version["version"], aliases=version["aliases"],
                      bento_tag=version["tags"].get(v.TAG_BENTO), decision="skipped: " + note,
                      tracking_uri=tracking_uri, skipped=True, params_option=params_option(ctx.root))  # fmt: skip


def run_summary(ctx: Any, released: Any, *, outcomes: dict[str, Any], chosen: str, n_rows: int,
                splits: dict[str, int], validation: str, test_metrics: dict[str, float], tracking_uri: str,
                notes: list[str]) -> RunSummary:  # fmt: skip
    """The summary of a finished run (``ctx``: flows.steps.RunContext; ``released``: release_steps.Released)."""
    return RunSummary(dataset_path=ctx.settings.data.path, dataset_md5=ctx.md5, n_rows=n_rows, split_sizes=splits,
                      validation=validation, candidates={k: o.result.metrics for k, o in outcomes.items()},
                      chosen=chosen, test_metrics=test_metrics, registered_model=ctx.name,
                      version=released.version, aliases=released.aliases, bento_tag=released.bento_tag,
                      decision=released.decision.reason, tracking_uri=tracking_uri, run_id=ctx.run_id, notes=notes,
                      gate=released.decision.summary_lines()[1:], task=ctx.task,
                      primary_metric=ctx.settings.evaluate.primary_metric,
                      params_option=params_option(ctx.root))  # fmt: skip


def _cell(value: Any) -> str:
    """A markdown table cell: pipes escaped, line breaks kept as <br>, None as a dash."""
    return "-" if value is None else str(value).replace("|", "\\|").replace("\n", "<br>")


def render_decision_markdown(decision: Any) -> str:
    """A :class:`PromotionDecision` as a `field | value` table: the verdict, why, and every gate's outcome.

    The rows after the versions are the decision's ``gate.*`` tags, so the UI and the registry say the same.
    """
    verdict = "promote" if decision.promote else "keep"
    rows = [("decision", verdict), ("reason", decision.reason),
            ("challenger version", decision.challenger_version),
            ("champion version", decision.champion_version or "none (no champion yet)")]  # fmt: skip
    shown = {"gate.decision", "gate.reason", "gate.challenger_version", "gate.champion_version"}
    rows += [(k.removeprefix("gate."), x) for k, x in decision.to_tags().items() if k not in shown]
    lines = [f"# Promotion decision: {verdict}", "", "| field | value |", "|---|---|"]
    lines += [f"| {_cell(k)} | {_cell(x)} |" for k, x in rows]
    return "\n".join(lines) + "\n"
