"""Print the chain behind a model version: bento → version → run → data → commit → params → validation → decision.

A scored row's chain (``mlops lineage --inference-id``) starts earlier, with its batch:
``components.inference.prediction_lookup.describe_inference``.
"""

from __future__ import annotations

from components import vocabulary as v
from components.release import registry


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


def chain_text(fields: dict[str, str]) -> str:
    width = max(map(len, fields))
    return "\n".join(f"{'→ ' if i else '  '}{k:<{width}}  {v}" for i, (k, v) in enumerate(fields.items()))


def describe_lineage(name: str, version: str) -> str:
    return chain_text(lineage(name, version))
