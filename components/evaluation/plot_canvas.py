"""What every evaluation plot shares: a pyplot-free Agg figure, saving it, the per-slice bar chart,
and the thinning and rounding of curve points written for ``dvc plots``.

Figures are drawn on matplotlib's Agg canvas without pyplot, so nothing is kept in a global figure
registry and no display is needed; each figure is cleared after saving.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

MAX_CURVE_POINTS = 200


def figure(width: float = 5.0, height: float = 4.0) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, format="png")
    fig.clear()
    return path


def slices_plot(
    slices: dict[str, dict[str, Any]],
    path: Path,
    metrics: tuple[str, str] = ("accuracy", "roc_auc"),
    *,
    unit_range: bool = True,
    title: str = "Metrics per slice",
) -> Path:
    """Two metrics per slice as horizontal bars (a missing value leaves its bar out)."""
    names = list(slices)
    fig = figure(7.0, max(2.5, 0.35 * len(names) + 1.2))
    ax = fig.add_subplot()
    pos = np.arange(len(names))
    first, second = ([np.nan if slices[k].get(m) is None else slices[k][m] for k in names] for m in metrics)
    ax.barh(pos - 0.2, first, height=0.4, label=metrics[0])
    ax.barh(pos + 0.2, second, height=0.4, label=metrics[1])
    ax.set_yticks(pos, [f"{k} (n={slices[k]['n']})" for k in names])
    ax.invert_yaxis()
    ax.set(xlabel="metric" if unit_range else "error", title=title)
    if unit_range:
        ax.set(xlim=(0, 1))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside, clear of the bars
    return save(fig, path)


def thin(n: int, limit: int = MAX_CURVE_POINTS) -> np.ndarray:
    """At most ``limit`` evenly spaced indices into ``n`` points, first and last kept."""
    return np.unique(np.linspace(0, n - 1, min(n, limit)).round().astype(int))


def number(value: float) -> float | None:
    return round(float(value), 6) if np.isfinite(value) else None  # JSON has no Infinity
