"""`mlops serve`: serve the champion's exact bento (or a given exact tag) with `bentoml serve`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from components.vocabulary import TAG_BENTO
from flows.cli.registry import add_model_option, unknown_model
from flows.runtime import EXIT_CONFIG, EXIT_NOTHING


class NoChampionError(LookupError):
    """There is nothing to serve: no champion, or the champion has no bento."""


def champion_bento_tag(registered_model: str, alias: str) -> str:
    """The exact bento tag recorded on the version ``alias`` points at."""
    from components.release import registry

    version = registry.alias_version(registered_model, alias)
    if version is None:
        raise NoChampionError(f"registered model '{registered_model}' has no '{alias}' version: run `mlops run` first")
    tags = registry.client().get_model_version(registered_model, version).tags
    tag = tags.get(TAG_BENTO)
    if not tag:
        raise NoChampionError(f"{registered_model} v{version} (@{alias}) has no bento_tag tag; it was never packaged")
    return tag


def serve_command(tag: str, host: str, port: int) -> list[str]:
    from components.release.infra_validation import bentoml_command, check_exact_tag

    check_exact_tag(tag)
    return [*bentoml_command(), "serve", tag, "--host", host, "--port", str(port)]


def cmd_serve(args: argparse.Namespace) -> int:
    from components.config import load_settings
    from components.dataset_settings import default_model_name
    from components.release import registry

    settings = load_settings(args.params)
    tag = args.tag
    if tag is None:  # an exact --tag needs no registry, so the model name is resolved only here
        registry.configure_tracking(Path(args.params).resolve().parent)
        name = args.model or default_model_name(args.params)
        try:
            tag = champion_bento_tag(name, settings.promote.alias)
        except NoChampionError as err:
            print(f"error: {unknown_model(name) or err}", file=sys.stderr)  # an unknown model: name the known ones
            return EXIT_NOTHING
    try:
        cmd = serve_command(tag, args.host or settings.serve.host, args.port or settings.serve.port)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"serving {tag} on http://{args.host or settings.serve.host}:{args.port or settings.serve.port}")
    sys.stdout.flush()
    os.execvp(cmd[0], cmd)  # replaces this process; returns only in tests that stub it
    return 0


def add_serve_command(sub) -> None:
    """Register `mlops serve [--port N] [--host H] [--tag NAME:VERSION] [--model NAME]`."""
    p = sub.add_parser("serve", help="serve the champion's exact bento (bentoml serve)")
    p.add_argument("--port", type=int, default=None, help="port (default: serve.port in params.yaml)")
    p.add_argument("--host", default=None, help="host (default: serve.host in params.yaml)")
    p.add_argument("--tag", default=None, help="exact bento tag NAME:VERSION (default: the champion's)")
    add_model_option(p)
    p.set_defaults(func=cmd_serve)
