"""Nothing changed: a finished version already has this run's fingerprint (dataset md5, params, contract, code).

Both ways in answer it with :func:`nothing_changed`: the training flow, after loading the data, and
`mlops run` on Prefect's temporary API, before any flow starts (:func:`run_context`, then
:func:`completed_run`). This module imports neither Prefect nor the training stack, so that answer costs
the registry query and little else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from components.release import registry
from components.release.summary import RunSummary, redact_uri, render_markdown, skipped_summary
from flows import steps


def nothing_changed(ctx: steps.RunContext, tracking_uri: str) -> RunSummary | None:
    """The skipped run's summary when a finished version has ``ctx``'s fingerprint, naming the champion it keeps."""
    done = registry.find_completed(ctx.name, ctx.fingerprint)
    if done is None:
        return None
    champion = registry.alias_version(ctx.name, ctx.settings.promote.alias)
    return skipped_summary(ctx, done, redact_uri(tracking_uri), champion)


def run_context(params_path: str = "params.yaml", overrides: list[str] | None = None, data_path: str | None = None,
                contract: str | None = None) -> steps.RunContext | None:  # fmt: skip
    """The run's context with its fingerprint, found without Prefect (tracking configured); None when the
    data is missing or unreadable (the flow says why)."""
    from components.data.dataset import file_md5
    from flows.runtime import prepare_environment

    prepare_environment(Path(params_path).resolve().parent)
    ctx = steps.resolve(params_path, overrides, data_path, contract)
    if steps.is_images(ctx):
        from flows.image_steps import tracked_md5

        try:
            md5 = tracked_md5(ctx)
        except (FileNotFoundError, ValueError):  # the flow says what is missing or wrong
            return None
    elif ctx.data_path.is_file():
        md5 = file_md5(ctx.data_path)
    else:
        return None
    registry.configure_tracking(ctx.root)
    return steps.fingerprinted(ctx, md5)


def completed_run(ctx: steps.RunContext) -> dict[str, Any] | None:
    """What the training flow would answer when nothing changed, for a :func:`run_context`: `mlops run`
    then neither starts nor stops a temporary Prefect server for a run that trains nothing. None when
    there is work to do."""
    summary = nothing_changed(ctx, registry.configure_tracking(ctx.root))
    if summary is None:
        return None
    return json.loads(json.dumps(summary.to_dict(), default=str)) | {"markdown": render_markdown(summary)}
