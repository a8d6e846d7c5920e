"""The gate's numbers as text: decision reasons, summary lines and ``gate.*`` tag values.

Kept apart from :mod:`components.release.gates` so the decision logic reads on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def p_short(value: float) -> str:
    return f"{value:.2g}" if value >= 1e-4 else "<0.0001"


def p_text(value: float) -> str:
    return f"p={p_short(value)}" if value >= 1e-4 else "p<0.0001"


def signed(value: float) -> str:
    """A difference with its sign; tiny ones in scientific notation so they do not read as zero."""
    return f"{value:+.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:+.2e}"


def comparison_text(c: Mapping[str, Any]) -> str:
    text = (
        f"challenger {c['metric']} {c['challenger']:.4f} vs {c.get('against', 'champion')} {c['champion']:.4f} "
        f"(diff {signed(c['diff'])}, "
        f"{c['confidence']:.0%} CI [{signed(c['ci_low'])}, {signed(c['ci_high'])}], "
        f"one-sided {p_text(c['p_value'])}, {c['n_valid']} paired bootstrap resamples"
    )
    if c.get("mcnemar"):
        m = c["mcnemar"]
        text += f"; McNemar b={m['b']} c={m['c']} {p_text(m['p_value'])}"
    return text + ")"


def slice_text(key: str, s: Mapping[str, Any]) -> str:
    drop = f"{s['drop']:.2%} of the champion's" if s.get("relative") else f"{s['drop']:.4f}"
    return f"slice '{key}': {s['metric']} {s['challenger']:.4f} vs champion {s['champion']:.4f} (drop {drop})"


def beats_text(c: Mapping[str, Any], bar: float) -> str:
    gain_low = c["ci_low"] if c["higher_is_better"] else -c["ci_high"]
    return f"the lower CI bound of the improvement, {signed(gain_low)}, is not above {bar:+.4f}"
