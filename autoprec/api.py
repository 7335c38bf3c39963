"""The Python API: `autoprec.search(...)`, the same job as `autoprec search`.

    import autoprec
    result = autoprec.search("work/model_output", target=0.99, budget=50, jobs=2)
    print(result.met, result.best.cost, result.best.changes())

Keyword arguments are the fields of `SearchSettings`; or pass `settings=SearchSettings(...)`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import optuna

from autoprec.cores import parse_jobs
from autoprec.engine.baselines import baseline_assignments
from autoprec.engine.driver import SearchResult, load_strategies, run_search
from autoprec.engine.holdout import HoldoutCheck, plan_holdout, resolve_holdout, searched_count
from autoprec.engine.ledger import Ledger, check_storage, default_storage, open_storage
from autoprec.engine.margin import working_target
from autoprec.engine.outputs import write_outputs
from autoprec.engine.settings import SearchSettings
from autoprec.engine.state import Candidate, SearchState
from autoprec.engine.target import build_target, check_threshold
from autoprec.engine.verify import check_exported
from autoprec.engine.workspace import search_folder
from autoprec.errors import UserError
from autoprec.evaluate import EvalSpec, Evaluator
from autoprec.evaluate.simulator import RUNTIMES
from autoprec.hardware import get_profile
from autoprec.quant_config import parse_subgraph, subgraph_nodes
from autoprec.report.html import report_after_search

__all__ = ["SearchResult", "SearchSettings", "check_settings", "resolve_workdir", "search"]


def resolve_workdir(path: str | Path, data: str | Path | None = None) -> tuple[Path, Path]:
    """(calibrated model, data) from a model_output folder or a model file (data defaults to its sibling)."""
    target = Path(path)
    if target.is_dir():
        model, default_data = target / "calibrated_model.onnx", target / "calibration_data"
        prefixed = sorted(target.glob("*_calibrated_model.onnx"))  # HMCT: <output_model_file_prefix>_calibrated_...
        if not model.exists() and len(prefixed) == 1:
            model = prefixed[0]
        if not model.exists():
            raise UserError(f"{target}: no calibrated_model.onnx; run `autoprec calibrate` or pass the model")
    else:
        model, default_data = target, target.parent / "calibration_data"
    return model, Path(data) if data else default_data


def check_settings(settings: SearchSettings) -> None:
    """Refuse settings that are wrong for any model, before anything is loaded or written."""
    if settings.force and settings.resume:
        raise UserError("--force replaces the earlier search and --resume continues it; pass only one of them")
    if settings.budget < 1:
        raise UserError(f"--budget must be at least 1 evaluation, got {settings.budget}")
    if settings.sensitivity_samples < 1:
        raise UserError(f"--sensitivity-samples must be at least 1, got {settings.sensitivity_samples}")
    if settings.runtime not in RUNTIMES:
        raise UserError(f"unknown runtime '{settings.runtime}'; use one of {', '.join(RUNTIMES)}")
    task = settings.task_metric is not None
    if task or settings.targets_file is None:  # else the file may give every output its own threshold
        check_threshold(settings.target, settings.metric, settings.aggregate, task=task)


def search(
    model: str | Path | None = None,
    *,
    settings: SearchSettings | None = None,
    on_evaluated: Callable[[Candidate], None] | None = None,
    on_sensitivity: Callable[[int, int], None] | None = None,
    on_holdout: Callable[[Candidate], None] | None = None,
    **fields,
) -> SearchResult:
    """Search the smallest config that meets the target on every output; writes the results into `out`.

    `fields` are `SearchSettings` fields (target=, budget=, jobs=, ...), applied over `settings`;
    `on_holdout(candidate)` is called after each held-out check of a would-be winner."""
    settings = dataclasses.replace(settings or SearchSettings(), **fields)
    if model is not None:
        settings.model = model
    check_settings(settings)
    strategies = load_strategies(settings.strategies, settings.options)
    model_path, data_path = resolve_workdir(settings.model, settings.data)
    reference = str(settings.float_model) if settings.float_model else None
    eval_spec = EvalSpec(
        str(model_path), str(data_path), settings.num_samples, settings.task_metric, settings.runtime, reference
    )
    evaluator = Evaluator(eval_spec, jobs=parse_jobs(settings.jobs))
    user_subgraphs = dict(parse_subgraph(spec) for spec in settings.subgraphs)
    for subgraph in user_subgraphs.values():
        subgraph_nodes(evaluator.model, subgraph["inputs"], subgraph["outputs"])
    goal = build_target(
        evaluator.outputs, settings.target, settings.metric, settings.aggregate, settings.targets_file,
        task=settings.task_metric is not None,
    )  # fmt: skip
    profile = get_profile(settings.profile)
    # a bad --holdout or --confidence is refused before the out folder is touched
    holdout = resolve_holdout(settings.holdout, evaluator)
    working = working_target(goal, settings.confidence, searched_count(holdout, evaluator.num_samples))
    out_dir = Path(settings.out)
    if settings.storage:
        check_storage(settings.storage)  # before --force clears anything
    with search_folder(out_dir, settings.resume, settings.force):
        split = plan_holdout(holdout, evaluator, goal,
                             baseline_assignments(evaluator.model, profile)["all-int8"], out_dir)  # fmt: skip
        storage, study = settings.storage, settings.study
        if settings.force and storage and study in optuna.study.get_all_study_names(open_storage(storage)):
            optuna.delete_study(study_name=study, storage=storage)
        identity = {
            "model": evaluator.model_hash,
            "data": evaluator.data_hash,
            "profile": profile.identity,
            "target": goal.identity(settings.task_metric),
        }
        if split.evaluator is not None or settings.confidence is not None:  # judged on other samples or bounds
            identity["holdout"] = f"{split.identity}; confidence {settings.confidence}"
        if settings.runtime != "as-searched":  # a ledger scored on another runtime is another search
            identity["runtime"] = settings.runtime
        ledger = Ledger(
            storage or default_storage(out_dir), study, identity, join=settings.resume or storage is not None,
            exclusive=storage is None,
        )  # fmt: skip
        state = SearchState(
            evaluator, working, profile, ledger, settings.budget, out_dir, settings.sensitivity_samples,
            settings.options, user_subgraphs, on_evaluated, on_sensitivity, settings.sensitivity, split.search,
            HoldoutCheck(split, ledger) if split.evaluator is not None else None, on_holdout,
        )  # fmt: skip
        result = run_search(state, strategies)
        if not result.candidates:
            names = ",".join(s.name for s in strategies)
            raise UserError(
                f"the strategies {names} evaluated no candidate: they build on earlier candidates; "
                f"start with the baselines (--strategies baselines,{names}) or --resume a search that has some"
            )
        if result.winner is not None:
            result.exported = check_exported(state, result.winner)
        write_outputs(result, out_dir)
        if settings.report:
            report_after_search(out_dir, evaluator, profile)
    return result
