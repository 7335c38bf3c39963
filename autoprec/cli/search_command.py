"""`autoprec search`: the live progress bar, the ranked candidates and the winner."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from autoprec.api import SearchSettings, search
from autoprec.engine.outputs import candidate_summary
from autoprec.errors import UserError
from autoprec.report import candidates_table, scores_table

console = Console(stderr=True)


def settings_from_args(args: argparse.Namespace) -> SearchSettings:
    """The SearchSettings the command line describes."""
    return SearchSettings(
        model=args.workdir, data=args.data, target=args.target, metric=args.metric, aggregate=args.aggregate,
        targets_file=args.targets, task_metric=args.task_metric, budget=args.budget, profile=args.profile,
        strategies=tuple(args.strategies.split(",")), options=dict(_option(o) for o in args.option),
        subgraphs=tuple(args.subgraph), out=args.out, resume=args.resume, force=args.force, storage=args.storage,
        study=args.study, jobs=args.jobs, num_samples=args.num_samples, sensitivity_samples=args.sensitivity_samples,
        runtime=args.runtime, report=args.report, float_model=args.float_model,
        sensitivity=args.sensitivity,
        holdout=args.holdout, confidence=args.confidence,
    )  # fmt: skip


def cmd_search(args: argparse.Namespace) -> int:
    return run_search_command(settings_from_args(args), quiet=args.quiet, as_json=args.json, top=args.top)


def run_search_command(settings: SearchSettings, quiet: bool = False, as_json: bool = False, top: int = 15) -> int:
    """Run a search with progress on stderr, print the tables; exit code 0 if the target is met, else 1."""
    progress = Progress(
        TextColumn("[bold]search"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
        TimeElapsedColumn(), console=console, disable=quiet or as_json or not console.is_terminal, transient=True,
    )  # fmt: skip
    task = progress.add_task("starting", total=settings.budget)
    best: list[float] = []

    def on_evaluated(candidate) -> None:
        if candidate.passed:
            best.append(candidate.cost)
        cost = f"best cost {min(best):.4f}" if best else "no passing config yet"
        failing = f"{len(candidate.failing)} outputs below target" if candidate.failing else "all outputs meet it"
        progress.update(
            task, completed=candidate.index + 1, description=f"{cost} | last ({candidate.strategy}): {failing}"
        )

    sensitivity_task = None

    def on_sensitivity(done: int, total: int) -> None:
        nonlocal sensitivity_task
        if sensitivity_task is None:
            sensitivity_task = progress.add_task("sensitivity pass (one run per unit)", total=total)
        progress.update(sensitivity_task, completed=done)

    ruled_out = 0

    def on_holdout(candidate) -> None:
        """Say each tightening of the working target; of the candidates only ruled out, say the first (the
        closing line counts them all)."""
        nonlocal ruled_out
        if candidate.holds or quiet or as_json:
            return
        if candidate.tightened:
            then = f"tightening the working target on {', '.join(candidate.tightened)}"
        elif not all(np.isfinite(v).all() for m in candidate.holdout.values.values() for v in m.values()):
            then = "its scores there are not finite (a NaN or Inf output or task score): ruled out"
        else:
            ruled_out += 1
            if ruled_out > 1:
                return
            then = (
                "by no more than the held-out noise: ruled out, the working target stays (further such "
                "candidates are counted at the end)"
            )
        progress.console.print(
            f"held-out check: evaluation #{candidate.index} (cost {candidate.cost:.4f}) meets the target on the "
            f"search samples but not on the held-out ones; {then}, searching on"
        )

    with progress:
        result = search(
            settings=settings, on_evaluated=on_evaluated, on_sensitivity=on_sensitivity, on_holdout=on_holdout
        )
    out = Path(settings.out)
    if as_json:
        print((out / "result.json").read_text())
        return 0 if result.met else 1
    advice = json.loads((out / "result.json").read_text()).get("advice")
    if advice and not quiet:
        console.print(f"[yellow]advice[/]: {advice}")
    if not quiet:
        Console().print(candidates_table([candidate_summary(result, c) for c in result.candidates], top))
    winner = result.winner
    if winner is not None and not quiet:
        title = "Winner" if result.met else "Best so far (does NOT meet the target)"
        Console().print(scores_table(title, candidate_summary(result, winner)["outputs"]))
    state = result.state
    status = "[green]target met[/]" if result.met else "[red]target NOT met[/] (best-so-far config written)"
    if state.holdout is not None:
        checked = [c for c in result.candidates if c.holds is not None]
        status += (
            f" on {len(state.search_indices)} search and {len(state.holdout.plan.held)} held-out samples "
            f"({len(checked)} checked, {sum(not c.holds for c in checked)} failed held out)"
        )
    cost = f"cost {winner.cost:.4f}, {len(winner.changes())} entries above int8" if winner else "no candidate"
    console.print(
        f"{status}: {cost}; {_evaluations(state.used, state.budget)}, sensitivity {state.sensitivity_runs} runs "
        f"({state.sensitivity_seconds:.1f} s), {result.seconds:.1f} s total -> {out}/quant_config.json"
        + (", report.html" if settings.report and (out / "report.html").is_file() else "")
    )
    return 0 if result.met else 1


def _evaluations(used: int, budget: int) -> str:
    """The evaluations against --budget, which counts those of every run of the search (a resumed one holds
    its earlier runs' evaluations, maybe more than a smaller --budget given now)."""
    if used <= budget:
        return f"{used}/{budget} evaluations"
    return f"{used} evaluations, past --budget {budget} (it counts every run's: raise it to search on)"


def _option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UserError(f"--option '{text}': write it as KEY=VALUE, e.g. optuna.sampler=nsga2")
    return key, value
