"""`mlops serve`: serve the champion's exact bento (or a given exact tag) with `bentoml serve`.

With ``serve.monitor_sample`` > 0 the service records that share of its requests and answers
under ``monitoring/served/<model>/`` of the project, for `mlops monitor --served`.
"""

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
    from components.release.bento_server import bentoml_command, check_exact_tag

    check_exact_tag(tag)
    return [*bentoml_command(), "serve", tag, "--host", host, "--port", str(port)]


def monitor_env(root: Path, sample: float) -> dict[str, str]:
    """What the service reads to record traffic: the share sampled and the project's folder of sinks."""
    from components.monitoring.served import served_root
    from components.serving.traffic_recorder import ENV_DIR, ENV_SAMPLE

    return {ENV_SAMPLE: repr(float(sample)), ENV_DIR: str(served_root(root).resolve())}


def cmd_serve(args: argparse.Namespace) -> int:
    from components.config import load_settings
    from components.dataset_settings import default_model_name
    from components.release import registry

    settings = load_settings(args.params)
    root = Path(args.params).resolve().parent
    tag, name = args.tag, args.model
    if tag is None:  # an exact --tag needs no registry, so the model name is resolved only here
        registry.configure_tracking(root)
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
    os.environ.update(monitor_env(root, settings.serve.monitor_sample))  # the server and its workers inherit it
    if settings.serve.monitor_sample > 0:
        from components.monitoring.served import served_root, served_sink

        where = served_sink(root, name) if name else served_root(root) / "<model>"
        print(f"recording {100 * settings.serve.monitor_sample:g}% of requests to {where} (serve.monitor_sample)")
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
