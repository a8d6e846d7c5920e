"""`mlops` commands beyond run/status/ingest: contract, validate, serve."""

from __future__ import annotations

import argparse


def add_commands(sub) -> None:
    """Register the extra sub-commands on the `mlops` parser."""
    return None
