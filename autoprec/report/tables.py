"""Rich tables for the terminal: baselines, sensitivity rankings, candidates."""

from __future__ import annotations

from rich.table import Table

from autoprec.evaluate import Scores
from autoprec.evaluate.metrics import get_metric


def _fmt(value: float, gap: float = 0.0) -> str:
    """Six decimals; 12 significant digits for a value short of its target by less than the sixth (`gap`), which
    would otherwise print as the target itself next to a "no"."""
    if 0 < gap < 1e-6:
        return f"{value:.12g}"
    return f"{value:.6f}" if abs(value) < 1e4 else f"{value:.4g}"


def baseline_table(outputs: list[str], results: dict[str, Scores], metric: str, num_samples: int) -> Table:
    """One row per output; each baseline cell shows mean cosine, min cosine (and `metric` if another), over the
    `num_samples` the baselines were run on (all given ones: a search later scores its own part of them)."""
    extra = get_metric(metric).name
    table = Table(
        title=f"Baselines vs float on {num_samples} samples: mean cosine / min cosine"
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


def calibration_table(settings: dict) -> Table:
    """`calibrate --method auto`: each method and scheme's all-int8 score; marked: the best (the best-int8
    baseline) and, in its scheme, the model's own ranges (all-int8, where the search starts)."""
    table = Table(title="Calibration: all-int8, mean cosine of the worst output (higher is better)")
    for name, justify in (("scheme", "left"), ("method", "left"), ("all-int8", "right"), ("", "left")):
        table.add_column(name, justify=justify)
    from autoprec.calibration.methods import label as range_label

    scheme = "asymmetric" if settings["asymmetric"] else "symmetric"
    own = range_label(settings["method"], settings["percentile"])
    for trial in settings["auto_trials"]:
        score = "non-finite" if trial["score"] is None else _fmt(trial["score"])
        marks = [
            text for text, label in (("[green]best all-int8[/]", settings.get("best_int8")), ("search start", own))
            if trial["scheme"] == scheme and trial["label"] == label
        ]  # fmt: skip
        table.add_row(trial["scheme"], trial["label"], score, ", ".join(marks))
    return table


def candidates_table(summaries: list[dict], top: int = 15, title: str | None = None) -> Table:
    """Ranked candidates: passing by cost, then failing by how far they are from the target. `margin`: meets the
    target on the search samples, but not the margin a held-out failure added, or fails on the held-out ones."""
    target = _common_target([info for c in summaries[:top] for info in c["outputs"].values()])
    table = Table(title=(title or "Candidates (passing by cost, then closest failing)") + _target_note(target))
    worst_column = "worst output: value" if target else "worst output: value / target"
    columns = (("#", "right"), ("strategy", "left"), ("meets", "center"), ("held out", "center"), ("cost", "right"),
               ("entries", "right"), (worst_column, "left"))  # fmt: skip
    for name, justify in columns:
        table.add_column(name, justify=justify, overflow="fold" if name == worst_column else "ellipsis")
    for rank, c in enumerate(summaries[:top], 1):
        name, info = min(c["outputs"].items(), key=lambda kv: kv[1].get("margin", -kv[1]["gap"]))  # the least room
        table.add_row(
            str(rank),
            c["strategy"],
            "[green]yes[/]" if c["passed"] else "[yellow]margin[/]" if c.get("meets_search") else "[red]no[/]",
            {True: "[green]holds[/]", False: "[red]fails[/]", None: "-"}[c.get("holds")],
            f"{c['cost']:.4f}",
            str(c["entries"]) + (f" ({len(c['ranges'])} ranges)" if c.get("ranges") else ""),
            f"{name}: {_fmt(info['value'])}" + ("" if target else f" / {info['target']}"),
        )
    return table


def scores_table(title: str, outputs: dict[str, dict]) -> Table:
    """Per-output values against their targets (their confidence bounds, which `meets` then judges, with
    --confidence; held-out values, once checked)."""
    target = _common_target(list(outputs.values()))
    table = Table(title=title + _target_note(target))
    held = any("holdout" in info for info in outputs.values())
    bounded = all("bound" in info for info in outputs.values())
    for name in (
        ["output", "value"] + (["bound"] if bounded else []) + ([] if target else ["target"]) + ["meets"]
        + (["held-out value", "holds"] if held else [])
    ):  # fmt: skip
        table.add_column(name, overflow="fold")
    for out, info in outputs.items():
        meets = info["gap"] <= 0 and (not bounded or info["bound_gap"] <= 0)
        cells = [out, _fmt(info["value"], info["gap"])] + ([_fmt(info["bound"], info["bound_gap"])] if bounded else [])
        cells += ([] if target else [info["target"]]) + [_yes(meets)]
        if held:
            check = info.get("holdout")
            cells += [_fmt(check["value"], check["gap"]), _yes(check["gap"] <= 0)] if check else ["-", "-"]
        table.add_row(*cells)
    return table


def _common_target(infos: list[dict]) -> str | None:
    """The one target every output shares (shown once in the title instead of on every row), else None."""
    targets = {info["target"] for info in infos}
    return targets.pop() if len(targets) == 1 else None


def _target_note(target: str | None) -> str:
    return f"\ntarget on every output: {target}" if target else ""


def _yes(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[red]no[/]"


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
