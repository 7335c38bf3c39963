"""The search told in words, from result.json and candidates.json (the report's first section)."""

from __future__ import annotations

from autoprec.engine.saved import SavedSearch
from autoprec.report.pareto import failed_holdout, judged_value, pareto_front, worst_margin


def baseline_candidates(saved: SavedSearch) -> list[tuple[str, dict]]:
    """The baselines strategy's candidates in evaluation order, each with its name: all-int8 (nothing changed),
    best-int8 (only int8 ranges changed: the best calibration method's) or all-int16."""
    base = sorted((c for c in saved.candidates if c["strategy"] == "baselines"), key=lambda c: c["index"])
    return [(_baseline_name(c), c) for c in base]


def _baseline_name(candidate: dict) -> str:
    qtypes = set(candidate.get("changes", {}).values())
    if not qtypes:
        return "all-int8"
    return "best-int8" if all(q.split("@")[0] == "int8" for q in qtypes) else "all-int16"


def search_notes(saved: SavedSearch) -> list[str]:
    """Sentences: target, baselines, winner, the real choices on the Pareto front, the advice line, and what was
    spent."""
    r, target = saved.result, saved.target
    targets = {t.describe() for t in target.outputs}
    goal = (f"every output ({len(target.outputs)}) {targets.pop()}" if len(targets) == 1
            else "; ".join(f"{t.output} {t.describe()}" for t in target.outputs))  # fmt: skip
    if r.get("confidence"):
        goal += f", judged on the {r['confidence']:.0%} confidence bound of its mean"
    notes = [f"Target: {goal} (candidates scored {r.get('runtime', 'as-searched')}, profile {r.get('profile')})."]
    for name, c in baseline_candidates(saved):
        failing = [t.output for t in target.outputs if t.gap_of(judged_value(c["outputs"][t.output])) > 0]
        notes.append(f"{name} {'fails ' + ', '.join(failing) if failing else 'meets every target'} "
                     f"(worst margin {worst_margin(c, target):+.5f}).")  # fmt: skip
    winner = r.get("winner")
    if winner is None:
        notes.append("No candidate was evaluated.")
    else:
        verdict = "meets the target" if r["meets_target"] else "does NOT meet the target (best failing candidate)"
        minimal = " No single raised unit can be dropped (checked)." if r.get("one_minimal") else ""
        notes.append(
            f"Winner #{winner['index']} from {winner['strategy']} {verdict}: cost {winner['cost']:.4f} of all-int16, "
            f"{winner['entries']} entries above int8, worst margin {worst_margin(winner, target):+.5f}.{minimal}"
        )
    front = [c for c in pareto_front(saved.candidates, target) if worst_margin(c, target) >= 0]
    if len(front) > 1:
        choices = ", ".join(f"cost {c['cost']:.4f} at margin {worst_margin(c, target):+.5f}" for c in front[:6])
        notes.append(f"Passing choices on the Pareto front (more cost buys more margin): {choices}.")
    cheaper = [c for c in saved.candidates if failed_holdout(c) and winner and c["cost"] < winner["cost"]]
    if cheaper:
        notes.append(f"{len(cheaper)} cheaper candidates (from cost {min(c['cost'] for c in cheaper):.4f}) met the "
                     "target on the search samples but failed the held-out check: not choices.")  # fmt: skip
    if r.get("all_int16_fails"):
        notes.append(f"all-int16 fails {', '.join(r['all_int16_fails'])}: only error compensation or float can "
                     "go beyond it.")  # fmt: skip
    if r.get("advice"):
        notes.append(f"Advice: {r['advice']}.")
    spent: dict[str, int] = {}
    for c in saved.candidates:
        spent[c["strategy"]] = spent.get(c["strategy"], 0) + 1
    notes.append(
        f"{r['evaluations']} of {r['budget']} evaluations ({', '.join(f'{s} {n}' for s, n in spent.items())}); "
        f"sensitivity pass {r.get('sensitivity_model_runs', 0)} model runs ({r.get('sensitivity_seconds', 0)} s); "
        f"{r.get('seconds', 0)} s in all."
    )
    return notes
