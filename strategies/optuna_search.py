"""Spend part of the remaining budget on an Optuna study around the current best set: one qtype choice per
unit that matters — the least important units of the best set (may they drop?) and the most important
units outside it (should they join?) — the rest of the best set stays as it is. A unit's choices are the
lattice steps it may take: int8 and int16, and up to its qtype in the best set when that is a float. Objective = cost,
constraint = every output meets its target. Warm-started with every candidate the other strategies
evaluated. The study lives in the ledger's storage, so several workers share its sampler search.

Reads: `search.best`, the sensitivity ranking, `results.ceiling_fails` (does not apply when all-int16
fails, unless `optuna.after_fallback=1`: on vad at 0.99 that spent 19 more evaluations for the same cost).
Publishes nothing.

    autoprec search --option optuna.sampler=nsga2 --option optuna.space=16 --option optuna.share=0.5
"""

from __future__ import annotations

import sys

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from autoprec.ir import LEVEL, base_qtype
from autoprec.strategy import Option, SearchView, Strategy, assignment_key, at_least, fraction

MAX_REPEATS = 20  # stop when the sampler keeps proposing configs the ledger already holds


SAMPLERS = {
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=True),
    "nsga2": lambda seed: optuna.samplers.NSGAIISampler(seed=seed),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
}


def _flag(text: str) -> bool:
    if text not in ("0", "1"):
        raise ValueError(f"use 0 or 1, got {text}")
    return text == "1"


def _sampler(text: str) -> str:
    if text not in SAMPLERS:
        raise ValueError(f"unknown sampler '{text}'; use one of {', '.join(SAMPLERS)}")
    return text


class OptunaSearch(Strategy):
    """An Optuna study (TPE by default) over the units around the best set; objective cost."""

    name = "optuna"
    options = {
        "sampler": Option("tpe", _sampler, "the sampler of the study"),
        "space": Option(24, at_least(1), "units in the search space"),
        "share": Option(0.5, fraction, "share of the remaining budget to spend"),
        "after_fallback": Option(False, _flag, "also run when all-int16 fails, around the ec/float winner"),
    }

    def applies(self, search: SearchView) -> bool:
        after_fallback = search.option("after_fallback") and search.best is not None
        return search.remaining > 1 and bool(search.units) and (search.results.ceiling_fails is None or after_fallback)

    def run(self, search: SearchView) -> None:
        sampler = search.option("sampler")
        space_size = search.option("space")
        share = search.option("share")
        template = search.best.assignment if search.best else search.base  # what stays outside the space
        levels = {u.name: search.unit_qtype(template, u.name) for u in search.units}
        levels = {u: q if q is None else base_qtype(q) for u, q in levels.items()}  # "int8@kl" (a tuned range): int8
        ranking = search.sensitivity().ranking()
        droppable = [u for u in reversed(ranking) if levels[u] not in (None, "int8")][: space_size // 2]
        addable = [u for u in ranking if levels[u] == "int8"][: space_size - len(droppable)]
        space = droppable + addable
        distributions = {
            u: CategoricalDistribution([q for q in search.unit_qtypes(u) if LEVEL[q] <= max(1, LEVEL[levels[u]])])
            for u in space
        }
        space_key = assignment_key({**template, **dict.fromkeys(space, "")})
        study = search.sampler_study(f"{sampler}.{space_key}", SAMPLERS[sampler](len(search.candidates)))
        self._warm_start(search, study, template, distributions)
        spend = max(1, int(search.remaining * share))
        repeats = 0
        while spend > 0 and search.remaining > 0 and repeats < MAX_REPEATS:
            trial = study.ask(distributions)
            before = len(search.candidates)
            candidate = search.evaluate([self._assignment(search, template, trial.params)])[0]
            if candidate is None:
                study.tell(trial, state=TrialState.FAIL)
                return
            repeats = repeats + 1 if len(search.candidates) == before else 0
            spend -= len(search.candidates) - before
            trial.set_constraint("shortfall", _constraint(candidate))
            study.tell(trial, candidate.cost)

    def _assignment(self, search: SearchView, template: dict[str, str], params: dict[str, str]) -> dict[str, str]:
        """`template` with each unit of the space at its chosen qtype."""
        for unit, qtype in params.items():
            template = search.raise_units([unit], template, qtype)
        return template

    def _warm_start(
        self, search: SearchView, study: optuna.Study, template: dict[str, str], distributions: dict
    ) -> None:
        """Every ledger candidate that is `template` with some choice on the space becomes a finished trial."""
        known = {tuple(sorted(t.params.items())) for t in study.get_trials(deepcopy=False)}
        for candidate in search.candidates:
            params = {unit: search.unit_qtype(candidate.assignment, unit) for unit in distributions}
            if any(params[u] not in d.choices for u, d in distributions.items()):
                continue
            if candidate.assignment != self._assignment(search, template, params):
                continue
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
