"""The files a search writes: quant_config.json (the winner), candidates.json (all, ranked), result.json."""

from __future__ import annotations

from pathlib import Path

from autoprec.engine.coverage import coverage_advice
from autoprec.engine.driver import SearchResult
from autoprec.engine.holdout import MIN_SAMPLES
from autoprec.engine.margin import samples_advice
from autoprec.engine.state import Candidate, SearchState
from autoprec.engine.target import OutputTarget
from autoprec.ir import parse_qtype
from autoprec.model_io import save_json
from autoprec.quant_config import to_quant_config

OUTPUT_FILES = ("quant_config.json", "candidates.json", "result.json", "ledger.journal", "report.html")


def candidate_summary(result: SearchResult, candidate: Candidate) -> dict:
    """A JSON-ready description of one candidate."""
    state = result.state
    return {
        "index": candidate.index,
        "strategy": candidate.strategy,
        "passed": candidate.passed,
        "cost": round(candidate.cost, 6),
        "entries": len(candidate.changes()),
        "units": state.raised_units(candidate),
        "shortfall": candidate.shortfall,
        "meets_search": candidate.meets,  # the target on the search samples, without the working margins
        "holds": candidate.holds,
        "outputs": {t.output: _output_summary(state, t, candidate) for t in state.target.outputs},
        "changes": candidate.changes(),
        "ranges": {n: label for n, q in candidate.changes().items() if (label := parse_qtype(q)[1])},
    }


def run_equivalents(state: SearchState) -> dict[str, float]:
    """MACs executed by the sensitivity pass, the evaluations (float references included) and the held-out
    part (the split and the checks of would-be winners), divided by the model's MACs per sample: what the search
    cost in whole-model runs."""
    sensitivity = state.sensitivity_equivalents
    holdout = state.holdout.equivalents if state.holdout else 0.0
    shared = holdout if state.holdout and state.holdout.plan.evaluator is state.evaluator else 0.0
    evaluation = state.evaluator.equivalents - sensitivity - shared
    parts = {"sensitivity": sensitivity, "evaluation": evaluation, "holdout": holdout}
    return {k: round(v, 2) for k, v in {**parts, "total": sum(parts.values())}.items()}


def _output_summary(state: SearchState, t: OutputTarget, candidate: Candidate) -> dict:
    """One output's value (on the search samples), its target, gap (0 when met) and margin (how far past the target,
    < 0 when short of it, in the metric's units); its confidence bound when the search
    judges bounds, and its held-out value and gap once the candidate was checked."""
    gap = t.gap(candidate.scores)
    summary = {"value": t.value(candidate.scores), "target": t.describe(), "gap": max(0.0, gap), "margin": -gap}
    if state.target.confidence is not None:
        summary["bound"] = state.target.judged(t, candidate.scores)
        summary["bound_gap"] = max(0.0, t.gap_of(summary["bound"]))
    if candidate.holdout is not None:
        summary["holdout"] = {"value": t.value(candidate.holdout), "gap": max(0.0, t.gap(candidate.holdout))}
    return summary


def write_outputs(result: SearchResult, out_dir: Path) -> None:
    """quant_config.json (the winner), candidates.json (all, ranked) and result.json (status, numbers)."""
    state = result.state
    winner = result.winner
    holdout_runs = state.holdout.model_runs if state.holdout and state.holdout.plan.evaluator is state.evaluator else 0
    if winner is not None:
        raised = set(state.raised_units(winner))
        whole = {name: spec.config() for name, spec in state.results.subgraphs.items() if set(spec.units) <= raised}
        config = to_quant_config(state.model, winner.assignment, state.profile, whole or None)
        save_json(config, out_dir / "quant_config.json")
    save_json([candidate_summary(result, c) for c in result.candidates], out_dir / "candidates.json")
    save_json(
        {
            "meets_target": result.met,
            "winner": candidate_summary(result, winner) if winner else None,
            "winner_exported": result.exported,
            "one_minimal": state.results.one_minimal if result.met else False,
            "evaluations": state.used,
            "budget": state.budget,
            "sensitivity_model_runs": state.sensitivity_runs,
            "sensitivity_seconds": round(state.sensitivity_seconds, 2),
            "evaluation_model_runs": state.evaluator.model_runs - state.sensitivity_runs - holdout_runs,
            "full_model_run_equivalents": run_equivalents(state),
            "seconds": round(result.seconds, 2),
            "strategies": result.strategies,
            "profile": state.profile.name,
            "target": state.target.to_json(),
            "model": str(Path(state.evaluator.spec.model_path).resolve()),  # absolute: read back from any folder
            "data": str(Path(state.evaluator.spec.data_path).resolve()),
            "num_samples": state.evaluator.num_samples,
            "runtime": state.evaluator.spec.runtime,
            "all_int16_fails": state.results.ceiling_fails or [],
            "holdout": _holdout_summary(state),
            "confidence": state.target.confidence,
            "advice": _advice(state, winner),
        },
        out_dir / "result.json",
    )


def _holdout_summary(state: SearchState) -> dict | None:
    """The held-out check: its samples, how many candidates it checked (and failed), the working margins."""
    if state.holdout is None:
        return None
    checked = [c for c in state.candidates if c.holds is not None]
    return {
        "samples": len(state.holdout.plan.held),
        "search_samples": len(state.search_indices),
        "checked": [c.index for c in checked],
        "failed": [c.index for c in checked if not c.holds],
        "tightened_by": [c.index for c in checked if c.tightened],  # the failures beyond the held-out noise
        "model_runs": state.holdout.model_runs,
        "margins": dict(state.target.margins),
        "out_of_range": [e.to_json() for e in state.holdout.plan.out_of_range],  # a folder's, beyond every range
    }


def _advice(state: SearchState, winner: Candidate | None) -> str | None:
    """One line when the winner cannot be trusted: held-out samples beyond the calibrated ranges, the bound's width,
    or no held-out check."""
    if winner is None:
        return None
    if state.holdout is not None and state.holdout.plan.out_of_range:
        return coverage_advice(list(state.holdout.plan.out_of_range), len(state.holdout.plan.held))
    plan = state.holdout.plan if state.holdout is not None else None
    given = len(state.search_indices) + (len(plan.held) if plan and plan.evaluator is state.evaluator else 0)
    advice = samples_advice(state.goal, winner.scores, state.target.confidence, given)
    if advice is None and state.holdout is None and len(state.search_indices) < MIN_SAMPLES:
        advice = (
            f"{len(state.search_indices)} samples: too few to hold some out, so the winner was not checked on data "
            f"the search never saw; give {MIN_SAMPLES} or more (or --holdout FOLDER)"
        )
    return advice
