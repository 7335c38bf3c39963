"""The files a search writes: quant_config.json (the winner), candidates.json (all, ranked), result.json."""

from __future__ import annotations

from pathlib import Path

from autoprec.engine.driver import SearchResult
from autoprec.engine.state import Candidate, SearchState
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
        "outputs": {
            t.output: {
                "value": t.value(candidate.scores),
                "target": t.describe(),
                "gap": max(0.0, t.gap(candidate.scores)),
            }
            for t in state.target.outputs
        },
        "changes": candidate.changes(),
    }


def run_equivalents(state: SearchState) -> dict[str, float]:
    """MACs executed by the sensitivity pass and the evaluations (float references included), divided by the
    model's MACs per sample: what the search cost in whole-model runs."""
    sensitivity = state.sensitivity_equivalents
    evaluation = state.evaluator.equivalents - sensitivity
    return {k: round(v, 2) for k, v in (("sensitivity", sensitivity), ("evaluation", evaluation),
                                        ("total", sensitivity + evaluation))}  # fmt: skip


def write_outputs(result: SearchResult, out_dir: Path) -> None:
    """quant_config.json (the winner), candidates.json (all, ranked) and result.json (status, numbers)."""
    state = result.state
    winner = result.winner
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
            "evaluation_model_runs": state.evaluator.model_runs - state.sensitivity_runs,
            "full_model_run_equivalents": run_equivalents(state),
            "seconds": round(result.seconds, 2),
            "strategies": result.strategies,
            "profile": state.profile.name,
            "target": state.target.to_json(),
            "model": state.evaluator.spec.model_path,
            "data": state.evaluator.spec.data_path,
            "num_samples": state.evaluator.num_samples,
            "runtime": state.evaluator.spec.runtime,
            "all_int16_fails": state.results.ceiling_fails or [],
        },
        out_dir / "result.json",
    )
