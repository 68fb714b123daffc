"""Figures without pyplot: matplotlib's object API (``matplotlib.figure.Figure``), so no backend is chosen or
switched — a notebook keeps its inline plots — nothing stays open in a global figure list, and nothing happens at
import (matplotlib itself is imported when a figure is made; it comes with the ``train`` extra)."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any


def figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (6.0, 4.0), **kw: Any) -> tuple[Any, Any]:
    """(figure, axes) like ``pyplot.subplots``, without pyplot."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kw)


def png_bytes(fig: Any, dpi: int = 90, tight: bool = True) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    return buf.getvalue()


def data_uri(fig: Any, dpi: int = 90) -> str:
    """The figure as a ``data:image/png;base64,...`` URI for a self-contained HTML page."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(fig, dpi)).decode("ascii")


def save_png(fig: Any, path: Path | str, dpi: int = 110) -> Path:
    """Write the figure as a PNG file, atomically (tight layout)."""
    from features.outputs import write_file

    fig.tight_layout()
    data = png_bytes(fig, dpi, tight=False)
    return write_file(path, lambda tmp: tmp.write_bytes(data))
