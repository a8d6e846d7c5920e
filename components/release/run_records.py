"""What the MLflow UI shows of a release: run names, the parent run's description and tags, the
registered model's description.

A user opens the MLflow UI and sees one experiment per registered model, runs named by model,
dataset and driver, and on the parent run: the verdict (``gate.*`` tags), a description that is the
run's summary, and a link to the version it registered. Everything is set through MLflow's own
tags (``mlflow.note.content`` is the description the UI renders as markdown).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from components import vocabulary as v

DESCRIPTION = "mlflow.note.content"  # the run's and the version's description in the MLflow UI
TAG_REGISTERED_MODEL = "registered_model"
TAG_REGISTERED_VERSION = "registered_version"


def parent_run_name(model: str, md5: str, driver: str) -> str:
    """``<model> · <dataset md5, 8 chars> · <driver>``: which model, on which data, run how."""
    return f"{model} · {md5[:8] or 'no-md5'} · {driver}"


def version_link(model: str, version: str) -> str:
    """A markdown link to the version's page, relative to the MLflow UI the description is read in."""
    return f"[{model} v{version}](#/models/{model}/versions/{version})"


def parent_tags(model: str, version: str, decision: Any) -> dict[str, str]:
    """The gate's verdict and every number it rests on, and the version registered, for the parent run."""
    return decision.to_tags() | {TAG_REGISTERED_MODEL: model, TAG_REGISTERED_VERSION: str(version)}


def release_description(model: str, version: str, decision: Any, aliases: list[str], notes: list[str]) -> str:
    """The parent run's description when no fuller summary is written (the DVC driver's release stage)."""
    held = ", ".join(f"@{a}" for a in aliases) or "no alias"
    lines = [f"**{'PROMOTE' if decision.promote else 'KEEP'}**: {decision.reason}", "",
             f"Registered {version_link(model, version)} ({held})."]  # fmt: skip
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines)


def failure_description(why: str, model: str, version: str | None) -> str:
    """What a FAILED run says on its page: why, and the version it leaves behind, if any."""
    left = f" {version_link(model, version)} is marked `decision=failed`." if version else ""
    return f"**FAILED**: {why}{left}"


def model_description(
    model: str,
    *,
    task: str,
    target: str,
    dataset: str,
    primary_metric: str,
    contract: str | None,
    alias: str = v.ALIAS_CHAMPION,
) -> str:
    """The registered model's description: what it predicts, what checks its data, what the aliases mean."""
    checks = f"the data contract `{contract}`" if contract else "the basic checks (no data contract configured)"
    return "\n".join([
        f"**{model}**: a {task} model predicting `{target}` from `{dataset}`, chosen and gated on {primary_metric}.",
        "",
        f"Its data is validated against {checks}; the same contract checks every request and batch it scores.",
        "",
        f"- `@{alias}`: the version that serves and scores batches. It moves only when a version passes the "
        "gate (thresholds, the comparison with the champion, slices, behaviour) and infra validation, or by "
        "`mlops promote` / `mlops rollback`.",
        f"- `@{v.ALIAS_CHALLENGER}`: the latest version that passed every threshold but did not beat `@{alias}`.",
        "",
        "Each version's tags say where it came from (`dataset_md5`, `git_commit`, `params_hash`, `fingerprint`) "
        "and what became of it (`decision`, `decision_reason`).",
    ])  # fmt: skip


def set_model_description(model: str, description: str) -> None:
    from components.release import registry

    registry.client().update_registered_model(model, description=description)


@contextmanager
def failures_recorded(name: str, registered: list[str]) -> Iterator[None]:
    """A run that fails says why: an `error` tag and a description on the MLflow run (which ends FAILED)
    and, once it has registered a version, `decision=failed` with the reason on that version."""
    import mlflow

    from components.release import registry

    try:
        yield
    except BaseException as err:
        why = f"{type(err).__name__}: {err}"[:500]
        left = registered[0] if registered else None
        with suppress(Exception):  # the original error matters more than a failure to record it
            mlflow.set_tags({v.TAG_ERROR: why, DESCRIPTION: failure_description(why, name, left)})
        if registered:
            with suppress(Exception):
                registry.set_version_tags(name, registered[0], {v.TAG_DECISION: v.DECISION_FAILED,
                                                                 v.TAG_DECISION_REASON: why})  # fmt: skip
        raise
