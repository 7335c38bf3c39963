"""Rich tables for the terminal: baselines, sensitivity rankings, candidates."""

from __future__ import annotations

from rich.table import Table

from autoprec.evaluate import Scores
from autoprec.metrics import get_metric


def _fmt(value: float) -> str:
    return f"{value:.6f}" if abs(value) < 1e4 else f"{value:.4g}"


def baseline_table(outputs: list[str], results: dict[str, Scores], metric: str) -> Table:
    """One row per output; each baseline cell shows mean cosine, min cosine (and `metric` if another)."""
    extra = get_metric(metric).name
    table = Table(
        title="Baselines vs float: mean cosine / min cosine"
        + ("" if extra == "cosine-similarity" else f" / mean {extra}")
    )
    table.add_column("output", style="bold", overflow="fold")
    for name in results:
        table.add_column(name, justify="right")
    for out in outputs:
        cells = []
        for scores in results.values():
            mean, worst = scores.aggregate(out, "cosine-similarity"), scores.aggregate(out, "cosine-similarity", "min")
            cell = f"{_fmt(mean)} / {_fmt(worst)}"
            if extra != "cosine-similarity":
                cell += f" / {_fmt(scores.aggregate(out, extra))}"
            cells.append(cell)
        table.add_row(out, *cells)
    return table
