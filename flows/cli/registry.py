"""`mlops promote`, `rollback` and `lineage`, and the `--model` option every registry command takes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flows.runtime import EXIT_CONFIG, EXIT_NOTHING


def _root(args: argparse.Namespace) -> Path:
    return Path(args.params).resolve().parent


def add_model_option(parser: argparse.ArgumentParser) -> None:
    """`--model NAME`: which registered model a command acts on (a store can hold one per dataset)."""
    parser.add_argument(
        "--model",
        default=None,
        metavar="NAME",
        help="registered model (default: promote.registered_model, else the name of validate.contract's contract)",
    )


def all_pages(search: Callable[..., Any], **kwargs: Any) -> list[Any]:
    """Every result of an MLflow ``search_*`` call, following page tokens (a page holds 100 models)."""
    results: list[Any] = []
    token = None
    while True:
        page = search(page_token=token, **kwargs)
        results.extend(page)
        token = page.token
        if not token:
            return results


def registered_model_names() -> list[str]:
    """Names of every registered model in the tracking store, sorted."""
    from components.release import registry

    return sorted(m.name for m in all_pages(registry.client().search_registered_models))


def unknown_model(name: str) -> str | None:
    """A one-line error when ``name`` is not a registered model (naming the ones that are), else None."""
    from mlflow.exceptions import MlflowException

    from components.release import registry

    try:
        registry.client().get_registered_model(name)
        return None
    except MlflowException as err:
        if err.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise  # an unreachable server is not "no such model"
    names = registered_model_names()
    known = ", ".join(names) if names else "none yet: run `mlops run`"
    return f"no registered model '{name}' (registered: {known})"


def resolve_model(args: argparse.Namespace, *, check: bool = True) -> str | None:
    """The registered model a command acts on, with tracking configured; None (after an error) if unknown.

    ``--model`` wins; otherwise the params' model, else its contract's name (a ConfigError names the key).
    ``check=False`` skips the existence check for commands whose own error already covers it.
    """
    from components.dataset_settings import default_model_name
    from components.release import registry

    registry.configure_tracking(_root(args))
    name = args.model or default_model_name(args.params)
    problem = unknown_model(name) if check else None
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return None
    return name


def _alias(args: argparse.Namespace) -> str:
    """promote.alias: the alias a promotion moves (champion unless params say otherwise)."""
    from components.config import load_settings

    return load_settings(args.params).promote.alias


def cmd_promote(args: argparse.Namespace) -> int:
    from components.release.promotion import promote_manually

    name = resolve_model(args)
    if name is None:
        return EXIT_NOTHING
    alias = _alias(args)
    out = promote_manually(name, str(args.version), reason=args.reason, lock_dir=_root(args) / ".mlops", alias=alias)
    print(f"{name} v{out.champion} is now @{alias} (previous-champion: {out.previous or 'none'})")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from components.release.promotion import PromotionError, rollback

    name = resolve_model(args, check=False)
    try:
        out = rollback(name, reason=args.reason, lock_dir=_root(args) / ".mlops", alias=_alias(args))
    except PromotionError as err:
        # An unknown model has no previous champion either: keep rollback's own message, add which models exist.
        problem = unknown_model(name)
        if problem is None:
            raise
        raise PromotionError(f"{err}; {problem}") from None
    print(f"{name}: @{_alias(args)} is back on v{out.champion}")
    return 0


def cmd_lineage_of_inference(args: argparse.Namespace) -> int:
    """`lineage --inference-id`: every scoring holding the id (newest first), each with its version's chain."""
    from components.inference.prediction_lookup import describe_inference, find_inference_id, prediction_files
    from components.release import registry

    if args.model and resolve_model(args) is None:  # --model names no registered model: say which exist
        return EXIT_NOTHING
    registry.configure_tracking(_root(args))
    # A folder typed on the command line is the shell's; the default is the one `mlops predict` writes to.
    folder = Path(args.predictions).resolve() if args.predictions else _root(args) / "predictions"
    matches = find_inference_id(args.inference_id, folder, model=args.model)
    if not matches:
        searched = f"{len(prediction_files(folder))} predictions files" if folder.is_dir() else "it does not exist"
        model = f" of model '{args.model}'" if args.model else ""
        print(f"error: no prediction{model} has inference_id '{args.inference_id}' in {folder} ({searched})",
              file=sys.stderr)  # fmt: skip
        return EXIT_NOTHING
    blocks = [describe_inference(m) for m in matches]
    if len(blocks) > 1:
        blocks = [f"scoring {i} of {len(blocks)}:\n{b}" for i, b in enumerate(blocks, start=1)]
        print(f"inference_id '{args.inference_id}' was scored {len(blocks)} times (newest first)\n")
    print("\n\n".join(blocks))
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    from components.release.lineage_report import describe_lineage, find_version

    if args.inference_id is not None:
        return cmd_lineage_of_inference(args)
    if args.predictions:
        print("error: --predictions goes with --inference-id", file=sys.stderr)
        return EXIT_CONFIG
    name = resolve_model(args)
    if name is None:
        return EXIT_NOTHING
    version = find_version(name, alias=args.alias, version=args.version, bento=args.bento)
    if version is None:
        asked = next(f"--{k} {v}" for k in ("alias", "version", "bento") if (v := getattr(args, k)))
        print(f"error: no version of '{name}' matches {asked}", file=sys.stderr)
        return EXIT_NOTHING
    print(describe_lineage(name, version))
    return 0


def add_commands(sub) -> None:
    """Register promote, rollback and lineage on the `mlops` parser."""
    p = sub.add_parser("promote", help="deliberately promote a version to @champion (recorded)")
    p.add_argument("version", type=int)
    p.add_argument("--reason", required=True)
    add_model_option(p)
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("rollback", help="move @champion back to @previous-champion (recorded)")
    p.add_argument("--reason", default="rollback requested")
    add_model_option(p)
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser(
        "lineage", help="[inference id → batch →] bento → version → run → data → commit → params → decision"
    )
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--alias")
    group.add_argument("--version")
    group.add_argument("--bento", help="an exact bento tag")
    group.add_argument("--inference-id", metavar="ID", help="a scored row's id, as in the predictions files")
    p.add_argument(
        "--predictions",
        metavar="DIR",
        default=None,
        help="with --inference-id: the folder `mlops predict` wrote to (default: predictions/ beside params.yaml)",
    )
    add_model_option(p)
    p.set_defaults(func=cmd_lineage)
