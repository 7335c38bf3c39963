"""report.html: one self-contained page (inline SVG/PNG, no script, works offline) about one search.

Written by `autoprec report` and at the end of every search (skipped with one note when matplotlib is
missing). Sections: notes in words, baselines and target, the Pareto front, scores over the evaluations,
sensitivity, the curve along the sensitivity order, the winner's config by op type, HMCT debug plots.
"""

from __future__ import annotations

import hashlib
import html
import json
from pathlib import Path

from rich.console import Console

from autoprec.engine.saved import SavedSearch, load_saved
from autoprec.engine.sensitivity import Sensitivity, read_sensitivity
from autoprec.engine.target import OutputTarget
from autoprec.evaluate import Evaluator
from autoprec.hardware import HardwareProfile, get_profile
from autoprec.model_io import nested_numbers, read_cache, read_json, save_json, save_text
from autoprec.report import figures
from autoprec.report.curve import ranking_curve
from autoprec.report.debug import ranking_curve_figure
from autoprec.report.notes import baseline_candidates, search_notes
from autoprec.report.pareto import judged_value, pareto_front, worst_margin
from autoprec.report.plotting import INSTALL, has_matplotlib, inline_png, inline_svg

STYLE = """body{font-family:system-ui,sans-serif;max-width:1180px;margin:1em auto;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;border-bottom:1px solid #ccc;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
td:first-child,th:first-child{text-align:left}.ok{color:#080}.miss{color:#b00}figure{margin:.5em 0}
figure svg,figure img{max-width:100%;height:auto}.note{color:#555;font-size:.9em}
.tables{display:flex;flex-wrap:wrap;gap:0 1.5em}h3{font-size:.95em;margin:.6em 0 0}"""


def write_report(out: str | Path, evaluator: Evaluator | None = None, profile: HardwareProfile | None = None) -> Path:
    """Write OUT/report.html of the search in `out`; with an evaluator, also the sensitivity-order curve
    (~12 evaluations on 2 samples)."""
    saved = load_saved(out)
    profile = profile or get_profile(saved.result.get("profile", "generic"))
    sensitivity = read_sensitivity(saved.out / "sensitivity-node-single.json")  # None: no pass, or unreadable
    sections = [_notes(saved), _baselines(saved), _pareto(saved), _history(saved), _sensitivity(saved, sensitivity)]
    sections += [_curve(saved, evaluator, profile, sensitivity), _config(saved, evaluator), _debug(saved)]
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>autoprec report</title><style>{STYLE}</style>"
        f"</head><body><h1>autoprec search report: {html.escape(str(saved.out))}</h1>{''.join(sections)}</body></html>"
    )
    path = saved.out / "report.html"
    save_text(page.encode("utf-8", "replace").decode(), path)  # a name that is not UTF-8 (byte 0xfe) shows as "?"
    return path


def report_after_search(out: Path, evaluator: Evaluator, profile: HardwareProfile) -> Path | None:
    """The report a search writes at its end; without matplotlib one note instead."""
    if not has_matplotlib():
        Console(stderr=True).print(f"report.html skipped: plots need matplotlib ({INSTALL})")
        return None
    return write_report(out, evaluator, profile)


def _section(title: str, body: str, anchor: str) -> str:
    return f"<section id='{anchor}'><h2>{html.escape(title)}</h2>{body}</section>"


def _figure(svg: str, name: str) -> str:
    return f"<figure class='plot' data-plot='{name}'>{svg}</figure>"


def _notes(saved: SavedSearch) -> str:
    return _section("Search notes", "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in search_notes(saved)) +
                    "</ul>", "notes")  # fmt: skip


def _baselines(saved: SavedSearch) -> str:
    columns = baseline_candidates(saved)
    winner = saved.result.get("winner")
    if winner:
        columns.append(("winner", winner))
    head = "".join(f"<th>{name}</th>" for name, _ in columns)
    rows = []
    for t in saved.target.outputs:
        cells = "".join(_value_cell(c["outputs"][t.output], t) for _, c in columns)
        rows.append(f"<tr><td>{html.escape(t.output)}</td><td>{html.escape(t.describe())}</td>{cells}</tr>")
    body = f"<table><tr><th>output</th><th>target</th>{head}</tr>{''.join(rows)}</table>"
    return _section("Baselines per output and the target", body, "baselines")


def _value_cell(output: dict, t: OutputTarget) -> str:
    """An output's value, and its confidence bound with --confidence; green when what the search judged passes."""
    bound = f" (bound {output['bound']:.6f})" if "bound" in output else ""
    return f"<td class='{'ok' if t.gap_of(judged_value(output)) <= 0 else 'miss'}'>{output['value']:.6f}{bound}</td>"


def _pareto(saved: SavedSearch) -> str:
    winner = saved.result.get("winner")
    svg = figures.pareto_svg(saved.candidates, saved.target, winner["index"] if winner else None)
    rows = "".join(
        f"<tr><td>#{c['index']} {html.escape(c['strategy'])}</td><td>{c['cost']:.4f}</td><td>{c['entries']}</td>"
        f"<td>{worst_margin(c, saved.target):+.5f}</td><td>{_held_out(c)}</td></tr>"
        for c in pareto_front(saved.candidates, saved.target)
    )
    head = "<tr><th>evaluation</th><th>cost</th><th>entries</th><th>worst margin</th><th>held out</th></tr>"
    table = f"<table>{head}{rows}</table>"
    return _section("Pareto front: cost vs the worst output's margin", _figure(svg, "pareto") + table, "pareto")


def _held_out(summary: dict) -> str:
    return {True: "holds", False: "fails"}.get(summary.get("holds"), "-")


def _history(saved: SavedSearch) -> str:
    return _section("Scores over the evaluations, and what each strategy spent",
                    _figure(figures.history_svg(saved.candidates, saved.target), "history"), "history")  # fmt: skip


def _sensitivity(saved: SavedSearch, sensitivity: Sensitivity | None) -> str:
    if sensitivity is None:
        return _section("Sensitivity", "<p class='note'>no readable sensitivity pass in this search</p>", "sensitivity")
    values = sensitivity.values
    measured = list(next(iter(values.values())))
    outputs = [t.output for t in saved.target.outputs if t.output in measured] or measured  # task-only targets
    tables = []
    for output in outputs:
        rows = "".join(
            f"<tr><td>{html.escape(u)}</td>"
            + "".join(f"<td>{values[u][output][m]:.5g}</td>" for m in ("cosine-similarity", "mse", "sqnr"))
            + "</tr>"
            for u in figures.top_units(values, output)
        )
        tables.append(f"<div><h3>{html.escape(output)}</h3><table><tr><th>unit</th><th>cosine</th><th>mse</th>"
                      f"<th>sqnr</th></tr>{rows}</table></div>")  # fmt: skip
    body = (
        "<p class='note'>each unit quantized alone (int8, the rest float), most damaging first</p>"
        + _figure(figures.sensitivity_svg(values, outputs), "sensitivity")
        + f"<div class='tables'>{''.join(tables)}</div>"
    )
    return _section("Sensitivity: top units per output and metric", body, "sensitivity")


def _curve(
    saved: SavedSearch, evaluator: Evaluator | None, profile: HardwareProfile, sensitivity: Sensitivity | None
) -> str:
    if evaluator is None or sensitivity is None:
        body = "<p class='note'>not computed (needs the model and the search's sensitivity pass)</p>"
    else:
        indices = list(range(min(2, evaluator.num_samples)))
        curve = _cached_curve(saved, evaluator, profile, sensitivity, indices)
        body = _figure(inline_svg(ranking_curve_figure(curve, saved.target)), "curve")
    return _section("Cumulative error curve along the sensitivity order", body, "curve")


def _cached_curve(
    saved: SavedSearch, evaluator: Evaluator, profile: HardwareProfile, sensitivity: Sensitivity, indices: list[int]
) -> dict:
    """The ranking curve, computed once per model, data, profile, target and ranking (a second report or a
    resumed search runs nothing): cached as `sensitivity-curve.json` beside the sensitivity pass."""
    identity = [evaluator.model_hash, evaluator.data_hash, profile.identity, saved.target.to_json(), indices,
                sensitivity.ranking()]  # fmt: skip
    key = hashlib.sha256(json.dumps(identity, default=str).encode()).hexdigest()[:20]
    path = saved.out / "sensitivity-curve.json"
    cached = (read_cache(path, key) or {}).get("curve")
    if _is_curve(cached):
        return cached
    curve = ranking_curve(evaluator, profile, sensitivity, saved.target, indices)
    save_json({"key": key, "curve": curve}, path)
    return curve


def _is_curve(curve: object) -> bool:
    """True for a ranking curve as `ranking_curve` returns it (a cache that is not one is computed again)."""
    return (
        isinstance(curve, dict)
        and nested_numbers(curve.get("k"), 1)
        and nested_numbers(curve.get("outputs"), 2)
        and isinstance(curve.get("units"), list)
        and nested_numbers(curve.get("samples"), 0)
    )


def _config(saved: SavedSearch, evaluator: Evaluator | None) -> str:
    config = read_json(saved.config_path) if saved.config_path.is_file() else {"node_config": {}}
    changes = {
        n: spec.get("qtype") or "/".join(sorted(set(spec.values()))) for n, spec in config["node_config"].items()
    }
    op_of, totals = {}, {}
    if evaluator is not None:
        model = evaluator.model
        op_of = {n.name: n.op_type for n in model.model.graph.node}
        for node in model.model.graph.node:
            if model.input_calibrations(node.name):
                totals[node.op_type] = totals.get(node.op_type, 0) + 1
    grouped = figures.config_by_op(op_of, changes)
    rows = "".join(
        f"<tr><td>{html.escape(op)}</td><td>{html.escape(q)}</td><td style='text-align:left'>"
        f"{html.escape(', '.join(nodes))}</td></tr>"
        for op, by_q in grouped.items() for q, nodes in by_q.items()
    )  # fmt: skip
    subgraphs = ", ".join(config.get("subgraph_config", {})) or "none"
    body = (_figure(figures.config_svg(grouped, totals), "config") if grouped else "<p>nothing raised</p>") + (
        f"<table><tr><th>op type</th><th>qtype</th><th>nodes</th></tr>{rows}</table>"
        f"<p class='note'>subgraphs kept whole: {html.escape(subgraphs)}</p>"
    )
    return _section("The winner's config by op type", body, "config")


def _debug(saved: SavedSearch) -> str:
    pngs = sorted((saved.out / "debug").glob("*.png"))
    if not pngs:
        body = "<p class='note'>none yet: `autoprec debug runall` writes HMCT's plots into OUT/debug/</p>"
    else:
        body = "".join(_figure(inline_png(p, p.stem), "debug") for p in pngs)
    return _section("HMCT debug plots (OUT/debug)", body, "debug")
