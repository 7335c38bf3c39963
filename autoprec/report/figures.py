"""The report's figures (matplotlib), from what a search wrote: candidates, targets, sensitivity, config."""

from __future__ import annotations

from collections import Counter, defaultdict

from autoprec.engine.target import Target
from autoprec.report.pareto import failed_holdout, pareto_front, worst_margin
from autoprec.report.plotting import COLORS, inline_svg, plain_ticks, pyplot

TOP_UNITS = 10


def strategy_colors(summaries: list[dict]) -> dict[str, str]:
    """One color per strategy, in the order strategies first evaluated something."""
    order = dict.fromkeys(c["strategy"] for c in sorted(summaries, key=lambda c: c["index"]))
    return {s: COLORS[i % len(COLORS)] for i, s in enumerate(order)}


def hover_text(c: dict, margin: float) -> str:
    lines = [f"evaluation #{c['index']} {c['strategy']}: cost {c['cost']:.4f}, {c['entries']} entries"]
    lines[0] += f", worst margin {margin:+.5f}"
    lines += ["failed the held-out check"] if failed_holdout(c) else []
    lines += [f"{o}: {info['value']:.6f} ({info['target']})" for o, info in c["outputs"].items()]
    return "\n".join(lines)


def pareto_svg(summaries: list[dict], target: Target, winner: int | None) -> str:
    """Cost vs worst margin of every candidate; the front as a step line, the winner as a star; hover: details."""
    colors = strategy_colors(summaries)
    fig, ax = pyplot().subplots(figsize=(10, 4.2))
    tooltips, labelled = {}, set()
    for c in summaries:
        margin = worst_margin(c, target)
        star, hollow = c["index"] == winner, failed_holdout(c)
        artist = ax.scatter([c["cost"]], [margin], s=160 if star else 28, marker="*" if star else "o",
                            facecolors="none" if hollow else colors[c["strategy"]],
                            edgecolors=colors[c["strategy"]] if hollow else "black" if star else "none", zorder=3,
                            label=None if c["strategy"] in labelled else c["strategy"])  # fmt: skip
        labelled.add(c["strategy"])
        artist.set_gid(f"cand-{c['index']}")
        tooltips[f"cand-{c['index']}"] = hover_text(c, margin)
    front = pareto_front(summaries, target)
    ax.step([c["cost"] for c in front], [worst_margin(c, target) for c in front], where="post", color="gray",
            linewidth=1, zorder=2, label="Pareto front")  # fmt: skip
    ax.axhline(0, color="red", linestyle="--", linewidth=0.8)
    ax.set_xlabel("cost (all-int16 = 1.0)")
    ax.set_ylabel("worst output's margin to its target")
    ax.set_yscale("symlog", linthresh=1e-3)
    plain_ticks(ax.yaxis)
    ax.set_title(
        "Candidates: cost vs worst margin (star: winner; above the red line: passes on the search samples; "
        "hollow: failed the held-out check; hover a point)",
        fontsize=9,
    )
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return inline_svg(fig, tooltips)


def history_svg(summaries: list[dict], target: Target) -> str:
    """Each output's score over the evaluations (dashed: targets), and evaluations spent per strategy."""
    ordered = sorted(summaries, key=lambda c: c["index"])
    colors = strategy_colors(summaries)
    fig, (ax, spend) = pyplot().subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 1]})
    for t, color in zip(target.outputs, COLORS):
        ax.plot([c["index"] for c in ordered], [c["outputs"][t.output]["value"] for c in ordered], marker=".",
                color=color, linewidth=1, label=t.output)  # fmt: skip
        ax.axhline(t.threshold, color=color, linestyle="--", linewidth=0.8)
    start = 0
    for i, c in enumerate(ordered + [None]):
        if c is None or c["strategy"] != ordered[start]["strategy"]:
            ax.axvspan(ordered[start]["index"] - 0.5, ordered[i - 1]["index"] + 0.5, alpha=0.08,
                       color=colors[ordered[start]["strategy"]])  # fmt: skip
            start = i
    ax.set_xlabel("evaluation (background: strategy)")
    ax.set_ylabel(target.outputs[0].metric if target.outputs else "score")
    ax.set_title("Each output's score over the evaluations (dashed: targets)", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    counts = Counter(c["strategy"] for c in ordered)
    names = list(colors)
    spend.barh(names, [counts[n] for n in names], color=[colors[n] for n in names])
    spend.invert_yaxis()
    spend.set_title("evaluations per strategy", fontsize=10)
    return inline_svg(fig)


def top_units(values: dict, output: str, metric: str = "cosine-similarity", n: int = TOP_UNITS) -> list[str]:
    """The `n` units that hurt `output` most when quantized alone (sensitivity mode single)."""
    higher = metric in ("cosine-similarity", "sqnr")
    return sorted(values, key=lambda u: values[u][output][metric] if higher else -values[u][output][metric])[:n]


def sensitivity_svg(values: dict, outputs: list[str]) -> str:
    """Per output, the top units by 1 - cosine when quantized alone (int8, the rest float)."""
    columns = min(4, len(outputs))
    rows = -(-len(outputs) // columns)
    fig, axes = pyplot().subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(outputs) :]:
        ax.set_visible(False)
    for ax, output, color in zip(axes.flat, outputs, COLORS * 4):
        units = top_units(values, output)
        ax.barh(units, [max(1e-9, 1 - values[u][output]["cosine-similarity"]) for u in units], color=color)
        ax.invert_yaxis()
        ax.set_xscale("log")
        plain_ticks(ax.xaxis)
        ax.set_title(f"{output}: 1 - cosine", fontsize=9)
        ax.tick_params(axis="y", labelsize=6)
    fig.tight_layout()
    return inline_svg(fig)


def config_by_op(op_of: dict[str, str], changes: dict[str, str]) -> dict[str, dict[str, list[str]]]:
    """op type -> qtype -> normal nodes whose inputs the winner sets to it (from node_config's nodes)."""
    grouped: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for node, qtype in changes.items():
        grouped[op_of.get(node, "?")][qtype].append(node)
    return {op: dict(q) for op, q in sorted(grouped.items())}


def config_svg(grouped: dict[str, dict[str, list[str]]], totals: dict[str, int]) -> str:
    """Per op type: nodes raised by the winner (by qtype) against the op type's nodes with quantized inputs."""
    ops = sorted(set(grouped) | set(totals), key=lambda op: -totals.get(op, 0))
    fig, ax = pyplot().subplots(figsize=(10, max(2.0, 0.32 * len(ops) + 1)))
    qtypes = sorted({q for g in grouped.values() for q in g})
    left = [0] * len(ops)
    for qtype, color in zip(qtypes, COLORS[1:]):
        counts = [len(grouped.get(op, {}).get(qtype, [])) for op in ops]
        ax.barh(ops, counts, left=left, color=color, label=qtype)
        left = [a + b for a, b in zip(left, counts)]
    ax.barh(ops, [totals.get(op, 0) - raised for op, raised in zip(ops, left)], left=left, color="#dddddd",
            label="int8")  # fmt: skip
    ax.invert_yaxis()
    ax.set_xlabel("nodes")
    ax.set_title("Winner's config by op type", fontsize=10)
    ax.legend(fontsize=8)
    return inline_svg(fig)
