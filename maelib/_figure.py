"""Pyplot-free figures: an Agg-backed ``new_figure``, a grid of axes, and PNG display in IPython."""

from __future__ import annotations

import io
import sys

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _figure_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def _show_figures_in_ipython() -> None:
    """Let IPython show figures as PNG without pyplot (its inline backend does so only once loaded)."""
    ip = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
    png = ip.display_formatter.formatters["image/png"] if ip is not None else None
    if png is not None and Figure not in png.type_printers:
        png.for_type(Figure, _figure_png)


def new_figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    """A pyplot-free figure with an Agg canvas."""
    _show_figures_in_ipython()
    fig = Figure(figsize=(width, height), layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _grid_axes(n: int, ncols: int, cell: float = 2.4) -> tuple[Figure, list[Axes]]:
    ncols = max(1, min(int(ncols), n))
    nrows = -(-n // ncols)
    fig = new_figure(cell * ncols, cell * nrows + 0.3)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_axis_off()
    return fig, axes[:n]
