"""matplotlib, optional (`pip install 'autoprec[report]'`): loading it, and figures as PNG files or inline SVG.

Inline SVG keeps report.html one self-contained file that works offline with no JavaScript; a point's
hover text is an SVG <title> (the browser's own tooltip)."""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path
from typing import Any

from autoprec.errors import UserError

INSTALL = "pip install 'autoprec[report]'"
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")


def has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend; a UserError naming the extra when it is missing."""
    try:
        import matplotlib
    except ImportError as exc:
        raise UserError(f"plots need matplotlib, which is not installed: {INSTALL}") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plain_ticks(axis: Any) -> None:
    """Tick labels like 1e-04 instead of mathtext powers (mathtext layout dominated the report's time)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0e}" if v and abs(v) < 0.01 else f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def save_png(fig: Any, path: str | Path) -> Path:
    """Write a figure as PNG (and close it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    return path


def inline_svg(fig: Any, tooltips: dict[str, str] | None = None) -> str:
    """The figure as an <svg> element (closed afterwards); `tooltips` maps an artist's gid to its hover text."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    pyplot().close(fig)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    for gid, text in (tooltips or {}).items():
        title = f"<title>{html.escape(text)}</title>"
        svg = re.sub(f'(<g id="{re.escape(gid)}"[^>]*>)', lambda m, t=title: m.group(1) + t, svg, count=1)
    return svg


def inline_png(path: str | Path, alt: str) -> str:
    """An <img> element holding a PNG file's bytes (no external reference)."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
