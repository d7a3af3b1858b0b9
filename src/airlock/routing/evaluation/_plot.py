"""The quality/cost plot: accuracy against share of strong calls, one panel per subset."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ._report import SubsetReport

__all__ = ["PlotUnavailableError", "plot_reports"]


class PlotUnavailableError(RuntimeError):
    """matplotlib (the `plot` extra) is not installed."""


def plot_reports(reports: Sequence[SubsetReport], out: Path) -> None:
    """Write a PNG. Uses the Agg canvas directly, so no global backend is touched."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # optional dependency
        raise PlotUnavailableError(
            "plotting needs matplotlib: pip install 'airlock[plot]'"
        ) from exc
    if not reports:
        raise ValueError("nothing to plot")
    fig = Figure(figsize=(5.5 * len(reports), 4.5), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(reports), squeeze=False)[0]
    for ax, rep in zip(axes, reports, strict=True):
        for m in rep.routers:
            style = "--" if m.name.startswith(("random", "oracle")) else "-"
            ax.plot(
                100 * m.curve.share,
                100 * m.curve.accuracy,
                style,
                label=f"{m.name} (APGR {m.apgr:.2f})",
                linewidth=1.4,
            )
        ax.axhline(100 * rep.weak_accuracy, color="grey", linestyle=":", linewidth=1)
        ax.axhline(100 * rep.strong_accuracy, color="red", linestyle=":", linewidth=1)
        ax.set_title(f"{rep.subset} ({rep.rows} prompts)")
        ax.set_xlabel("strong model calls (%)")
        ax.set_ylabel("accuracy (%)")
        ax.set_xlim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, format="png")
