"""The Python API: `autoprec.search(...)`, the same job as `autoprec search`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import optuna

from autoprec.config import parse_subgraph, subgraph_nodes, to_quant_config
from autoprec.errors import UserError
from autoprec.evaluate import EvalSpec, Evaluator
from autoprec.hardware import get_profile
from autoprec.ledger import default_storage, open_storage
from autoprec.model_io import save_json
from autoprec.search import (
    DEFAULT_STRATEGIES,
    Candidate,
    LedgerSpec,
    SearchResult,
    SearchState,
    load_strategies,
    run_search,
)
from autoprec.target import build_target

OUTPUT_FILES = ("quant_config.json", "candidates.json", "result.json", "ledger.journal")


def resolve_workdir(path: str | Path, data: str | Path | None = None) -> tuple[Path, Path]:
    """(calibrated model, data) from a model_output folder or a model file (data defaults to its sibling)."""
    target = Path(path)
    if target.is_dir():
        model, default_data = target / "calibrated_model.onnx", target / "calibration_data"
        if not model.exists():
            raise UserError(f"{target}: no calibrated_model.onnx; run `autoprec calibrate` or pass the model")
    else:
        model, default_data = target, target.parent / "calibration_data"
    return model, Path(data) if data else default_data


def search(
    model: str | Path = ".",
    data: str | Path | None = None,
    target: float = 0.99,
    budget: int = 50,
    metric: str = "cosine-similarity",
    aggregate: str = "mean",
    targets_file: str | None = None,
    profile: str = "generic",
    strategies: Iterable[str] = DEFAULT_STRATEGIES,
    out: str | Path = "autoprec_out",
    resume: bool = False,
    force: bool = False,
    storage: str | None = None,
    study: str = "autoprec",
    subgraphs: Iterable[str] = (),
    options: dict[str, str] | None = None,
    task_metric: str | None = None,
    jobs: int = 1,
    num_samples: int | None = None,
    sensitivity_samples: int = 2,
    on_evaluated: Callable[[Candidate], None] | None = None,
    on_sensitivity: Callable[[int, int], None] | None = None,
) -> SearchResult:
    """Search the smallest config that meets `target` on every output; writes the results into `out`."""
    if budget < 1:
        raise UserError(f"--budget must be at least 1 evaluation, got {budget}")
    chosen = load_strategies(strategies)
    model_path, data_path = resolve_workdir(model, data)
    evaluator = Evaluator(EvalSpec(str(model_path), str(data_path), num_samples, task_metric), jobs=jobs)
    user_subgraphs = dict(parse_subgraph(spec) for spec in subgraphs)
    for subgraph in user_subgraphs.values():
        subgraph_nodes(evaluator.model, subgraph["inputs"], subgraph["outputs"])
    goal = build_target(evaluator.outputs, target, metric, aggregate, targets_file, task=task_metric is not None)
    out_dir = Path(out)
    _prepare_out(out_dir, resume, force)
    if force and storage and study in optuna.study.get_all_study_names(open_storage(storage)):
        optuna.delete_study(study_name=study, storage=storage)
    ledger = LedgerSpec(storage or default_storage(out_dir), study, join=resume or storage is not None,
                        exclusive=storage is None)  # fmt: skip
    state = SearchState(
        evaluator, goal, get_profile(profile), budget, out_dir, ledger, sensitivity_samples, on_evaluated,
        on_sensitivity, options,
    )  # fmt: skip
    if user_subgraphs:
        state.notes["user_subgraphs"] = user_subgraphs
    result = run_search(state, chosen)
    write_result(result, out_dir)
    return result


def _prepare_out(out_dir: Path, resume: bool, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir} is a file; choose another --out folder")
    if force:
        for name in OUTPUT_FILES:
            (out_dir / name).unlink(missing_ok=True)
    elif not resume and any((out_dir / name).exists() for name in OUTPUT_FILES):
        raise UserError(f"{out_dir} holds an earlier search; pass --resume to continue it or --force to replace it")
    out_dir.mkdir(parents=True, exist_ok=True)


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


def write_result(result: SearchResult, out_dir: Path) -> None:
    """quant_config.json (the winner), candidates.json (all, ranked) and result.json (status, numbers)."""
    state = result.state
    winner = result.winner
    if winner is not None:
        raised = set(state.raised_units(winner))
        whole = {
            name: {k: v for k, v in spec.items() if k != "units"}
            for name, spec in state.notes.get("subgraphs", {}).items()
            if set(spec["units"]) <= raised
        }
        config = to_quant_config(state.model, winner.assignment, state.profile, whole or None)
        save_json(config, out_dir / "quant_config.json")
    save_json([candidate_summary(result, c) for c in result.candidates], out_dir / "candidates.json")
    save_json(
        {
            "meets_target": result.met,
            "winner": candidate_summary(result, winner) if winner else None,
            "one_minimal": state.notes.get("one_minimal", False) if result.met else False,
            "evaluations": state.used,
            "budget": state.budget,
            "sensitivity_model_runs": state.sensitivity_runs,
            "sensitivity_seconds": round(state.sensitivity_seconds, 2),
            "evaluation_model_runs": state.evaluator.model_runs - state.sensitivity_runs,
            "seconds": round(result.seconds, 2),
            "strategies": result.strategies,
            "profile": state.profile.name,
            "target": state.target.to_json(),
            "all_int16_fails": state.notes.get("ceiling_fails", []),
        },
        out_dir / "result.json",
    )
