"""Spend part of the remaining budget on an Optuna study around the current best set: one int8/int16
choice per unit that matters — the least important units of the best set (may they drop?) and the most
important units outside it (should they join?) — the rest of the best set stays raised. Objective = cost,
constraint = every output meets its target. Warm-started with every candidate the other strategies
evaluated. The study lives in the ledger's storage, so several workers share its sampler search.

Reads: `search.best`, the sensitivity ranking, `results.ceiling_fails` (does not apply when all-int16
fails). Publishes nothing.

    autoprec search --option optuna.sampler=nsga2 --option optuna.space=16 --option optuna.share=0.5
"""

from __future__ import annotations

import sys

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from autoprec.strategy import Option, SearchView, Strategy, assignment_key, at_least, fraction

CHOICES = ("int8", "int16")
MAX_REPEATS = 20  # stop when the sampler keeps proposing configs the ledger already holds


SAMPLERS = {
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=True),
    "nsga2": lambda seed: optuna.samplers.NSGAIISampler(seed=seed),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
}


def _sampler(text: str) -> str:
    if text not in SAMPLERS:
        raise ValueError(f"unknown sampler '{text}'; use one of {', '.join(SAMPLERS)}")
    return text


class OptunaSearch(Strategy):
    """An Optuna study (TPE by default) over the units around the best set; objective cost."""

    name = "optuna"
    options = {
        "sampler": Option("tpe", _sampler, "tpe, nsga2 or random"),
        "space": Option(24, at_least(1), "units in the search space"),
        "share": Option(0.5, fraction, "share of the remaining budget to spend, in (0, 1]"),
    }

    def applies(self, search: SearchView) -> bool:
        return search.remaining > 1 and bool(search.units) and search.results.ceiling_fails is None

    def run(self, search: SearchView) -> None:
        sampler = search.option("sampler")
        space_size = search.option("space")
        share = search.option("share")
        best = set(search.raised_units(search.best)) if search.best else set()
        ranking = search.sensitivity().ranking()
        droppable = [u for u in reversed(ranking) if u in best][: space_size // 2]
        addable = [u for u in ranking if u not in best][: space_size - len(droppable)]
        space = droppable + addable
        fixed = sorted(best - set(droppable))
        distributions = {unit: CategoricalDistribution(CHOICES) for unit in space}
        space_key = assignment_key(dict.fromkeys(space + fixed, ""))
        study = search.sampler_study(f"{sampler}.{space_key}", SAMPLERS[sampler](len(search.candidates)))
        self._warm_start(search, study, space, fixed, distributions)
        spend = max(1, int(search.remaining * share))
        repeats = 0
        while spend > 0 and search.remaining > 0 and repeats < MAX_REPEATS:
            trial = study.ask(distributions)
            raised = fixed + [unit for unit in space if trial.params[unit] == "int16"]
            before = len(search.candidates)
            candidate = search.evaluate_units([raised])[0]
            if candidate is None:
                study.tell(trial, state=TrialState.FAIL)
                return
            repeats = repeats + 1 if len(search.candidates) == before else 0
            spend -= len(search.candidates) - before
            trial.set_constraint("shortfall", _constraint(candidate))
            study.tell(trial, candidate.cost)

    def _warm_start(
        self, search: SearchView, study: optuna.Study, space: list[str], fixed: list[str], distributions: dict
    ) -> None:
        """Every ledger candidate that raises the fixed units plus some of the space becomes a finished trial."""
        known = {tuple(sorted(t.params.items())) for t in study.get_trials(deepcopy=False)}
        for candidate in search.candidates:
            raised = set(search.raised_units(candidate))
            if not set(fixed) <= raised or not raised - set(fixed) <= set(space):
                continue
            if candidate.assignment != search.raise_units(raised):
                continue
            params = {unit: "int16" if unit in raised else "int8" for unit in space}
            if tuple(sorted(params.items())) in known:
                continue
            study.add_trial(
                create_trial(
                    params=params,
                    distributions=distributions,
                    value=candidate.cost,
                    constraints={"shortfall": _constraint(candidate)},
                )
            )


def _constraint(candidate) -> float:
    """The shortfall as Optuna's constraint (> 0: infeasible); a non-finite output's infinite shortfall as the
    largest float, so the ledger's journal stays strict JSON."""
    return min(candidate.shortfall, sys.float_info.max)
