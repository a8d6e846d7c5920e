"""Print the chain behind a model version: bento → version → run → data → commit → params → validation → decision.

From a scored row (``mlops lineage --inference-id``) the chain starts earlier: inference id → batch
→ prediction → version, then the version's chain as above.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from components import vocabulary as v
from components.release import registry

if TYPE_CHECKING:
    from components.inference.prediction_lookup import PredictionMatch


def find_version(
    name: str, *, alias: str | None = None, version: str | None = None, bento: str | None = None
) -> str | None:
    """Resolve an alias, a version number or an exact bento tag to a version of ``name``."""
    if alias:
        return registry.alias_version(name, alias)
    rows = registry.list_versions(name)
    if version:
        return version if any(r["version"] == str(version) for r in rows) else None
    for row in rows:
        if row["tags"].get(v.TAG_BENTO) == bento:
            return row["version"]
    return None


def lineage(name: str, version: str) -> dict[str, str]:
    """The lineage fields of one version, as recorded in tags and the run."""
    row = next(r for r in registry.list_versions(name) if r["version"] == str(version))
    t = row["tags"]
    return {
        "bento": t.get(v.TAG_BENTO, "(not packaged)"),
        "model version": f"{name} v{version} ({', '.join('@' + a for a in row['aliases']) or 'no alias'})",
        "run": f"{t.get('pipeline_run_id', '-')} (candidate run {row['run_id'] or '-'})",
        "candidate": f"{t.get(v.TAG_CANDIDATE, '-')} ({t.get(v.TAG_FAMILY, '-')})",
        "task": t.get(v.TAG_TASK, "-"),  # binary | multiclass | regression; not recorded before tasks existed
        "dataset": f"{t.get('dataset_path', '-')} md5 {t.get('dataset_md5', '-')}",
        "git commit": t.get(v.TAG_GIT_COMMIT, "-"),
        "params hash": t.get(v.TAG_PARAMS_HASH, "-"),
        "validation": f"{t.get('validation', '-')} ({t.get('validation_report', 'no report')})",
        "decision": f"{t.get(v.TAG_DECISION, '-')}: {t.get(v.TAG_DECISION_REASON, '')}",
        "promotion": t.get("promotion.reason") or t.get("manual_promotion.reason") or "-",
    }


def _chain(fields: dict[str, str]) -> str:
    width = max(map(len, fields))
    return "\n".join(f"{'→ ' if i else '  '}{k:<{width}}  {v}" for i, (k, v) in enumerate(fields.items()))


def describe_lineage(name: str, version: str) -> str:
    return _chain(lineage(name, version))


def inference_lineage(match: PredictionMatch) -> dict[str, str]:
    """The fields of one scored row's chain: its batch and prediction, then its version's lineage."""
    batch_row = "-" if match.batch_row is None else str(match.batch_row)
    fields = {
        "inference id": match.inference_id,
        "batch": f"{match.batch_path or '(no metadata)'} md5 {match.batch_md5 or '-'}",
        "batch row": batch_row,
        "scored at": match.scored_at,
        "predictions": f"{match.predictions} (row {match.file_row})",
        "metadata": str(match.metadata or "(missing)"),
        "prediction": match.describe_prediction() or "-",
    }
    name, version = match.model_name, match.model_version
    try:
        chain = lineage(name, version) if name else None
    except StopIteration:  # the version was deleted since, or the scoring was made against another store
        chain = None
    if chain is None:
        return fields | {"model version": f"{name or '?'} v{version} ({match.model_uri}; not in this registry)"}
    return fields | {"model version": chain.pop("model version")} | chain


def describe_inference(match: PredictionMatch) -> str:
    """``inference_lineage`` as printed by ``mlops lineage --inference-id``."""
    return _chain(inference_lineage(match))
