"""Rich tables for the terminal: baselines, sensitivity rankings, candidates."""

from __future__ import annotations

from rich.table import Table

from autoprec.evaluate import Scores
from autoprec.evaluate.metrics import get_metric


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


def candidates_table(summaries: list[dict], top: int = 15, title: str | None = None) -> Table:
    """Ranked candidates: passing by cost, then failing by how far they are from the target."""
    table = Table(title=title or "Candidates (passing by cost, then closest failing)")
    for name, justify in (("#", "right"), ("strategy", "left"), ("meets", "center"), ("cost", "right"),
                          ("entries", "right"), ("worst output (value / target)", "left")):  # fmt: skip
        table.add_column(name, justify=justify)
    for rank, c in enumerate(summaries[:top], 1):
        worst = max(c["outputs"].items(), key=lambda kv: kv[1]["gap"])
        name, info = worst
        table.add_row(
            str(rank),
            c["strategy"],
            "[green]yes[/]" if c["passed"] else "[red]no[/]",
            f"{c['cost']:.4f}",
            str(c["entries"]),
            f"{name}: {_fmt(info['value'])} / {info['target']}",
        )
    return table


def scores_table(title: str, outputs: dict[str, dict]) -> Table:
    """Per-output values against their targets."""
    table = Table(title=title)
    for name in ("output", "value", "target", "meets"):
        table.add_column(name)
    for out, info in outputs.items():
        table.add_row(out, _fmt(info["value"]), info["target"], "[green]yes[/]" if info["gap"] <= 0 else "[red]no[/]")
    return table


def sensitivity_table(rows: list[tuple[str, dict[str, float], str]], metrics: list[str], top: int) -> Table:
    """Sensitivity ranking, most sensitive first: item, metric values, and threshold/bits for activations."""
    table = Table(title="Node sensitivity (most sensitive first)")
    table.add_column("node", overflow="fold")
    for m in metrics:
        table.add_column(m, justify="right")
    table.add_column("threshold / bits")
    for item, values, extra in rows[:top]:
        table.add_row(item, *[_fmt(values[m]) for m in metrics], extra)
    return table
