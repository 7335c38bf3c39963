"""The Pareto front of a search's candidates: cost against the worst output's margin to its target."""

from __future__ import annotations

from autoprec.engine.target import Target


def worst_margin(summary: dict, target: Target) -> float:
    """The smallest margin over the outputs (value above its threshold, in the metric's units; < 0 fails), of the
    values the search judged: the confidence bounds with --confidence."""
    return min(-t.gap_of(judged_value(summary["outputs"][t.output])) for t in target.outputs)


def judged_value(output: dict) -> float:
    """An output's value as the search judged it: its confidence bound with --confidence, else its value."""
    return output.get("bound", output["value"])


def failed_holdout(summary: dict) -> bool:
    """True if the candidate met the target on the search samples and then failed the held-out check."""
    return summary.get("holds") is False


def pareto_front(summaries: list[dict], target: Target) -> list[dict]:
    """The candidates no other beats on both cost (lower) and worst margin (higher), cheapest first; a candidate
    that failed the held-out check is no choice, so it is left out."""
    points = [(c["cost"], worst_margin(c, target), c) for c in summaries if not failed_holdout(c)]
    front = [
        c for cost, margin, c in points
        if not any(o <= cost and m >= margin and (o < cost or m > margin) for o, m, _ in points)
    ]  # fmt: skip
    return sorted(front, key=lambda c: (c["cost"], c["entries"]))
