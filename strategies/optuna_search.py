"""Spend part of the remaining budget on an Optuna study around the current best set: one int8/int16
choice per unit that matters — the least important units of the best set (may they drop?) and the most
important units outside it (should they join?) — the rest of the best set stays raised. Objective = cost,
constraint = every output meets its target. Warm-started with every candidate the other strategies
evaluated. The study lives in the ledger's storage, so several workers share its sampler state.

Options (`--option optuna.sampler=tpe|nsga2|random`, `optuna.space=24`, `optuna.share=0.5`)."""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from autoprec.errors import UserError
from autoprec.search import SearchState, assignment_key

CHOICES = ("int8", "int16")
MAX_REPEATS = 20  # stop when the sampler keeps proposing configs the ledger already holds


SAMPLERS = {
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=True),
    "nsga2": lambda seed: optuna.samplers.NSGAIISampler(seed=seed),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
}


class OptunaSearch:
    name = "optuna"

    def applies(self, state: SearchState) -> bool:
        return state.remaining > 1 and bool(state.units) and "ceiling_fails" not in state.notes

    def run(self, state: SearchState) -> None:
        sampler = state.options.get("optuna.sampler", "tpe")
        if sampler not in SAMPLERS:
            raise UserError(f"unknown optuna.sampler '{sampler}'; use one of {', '.join(SAMPLERS)}")
        space_size = int(state.options.get("optuna.space", 24))
        share = float(state.options.get("optuna.share", 0.5))
        best = set(state.raised_units(state.best)) if state.best else set()
        ranking = state.sensitivity().ranking()
        droppable = [u for u in reversed(ranking) if u in best][: space_size // 2]
        addable = [u for u in ranking if u not in best][: space_size - len(droppable)]
        space = droppable + addable
        fixed = sorted(best - set(droppable))
        distributions = {unit: CategoricalDistribution(CHOICES) for unit in space}
        space_key = assignment_key(dict.fromkeys(space + fixed, ""))
        study = optuna.create_study(  # shared workers share the sampler; a lone search rebuilds it from the ledger
            storage=None if state.ledger.exclusive else state.ledger.storage,
            study_name=f"{state.ledger.study.study_name}.optuna.{sampler}.{space_key}",
            sampler=SAMPLERS[sampler](len(state.candidates)),
            direction="minimize",
            load_if_exists=True,
        )
        self._warm_start(state, study, space, fixed, distributions)
        spend = max(1, int(state.remaining * share))
        repeats = 0
        while spend > 0 and state.remaining > 0 and repeats < MAX_REPEATS:
            trial = study.ask(distributions)
            raised = fixed + [unit for unit in space if trial.params[unit] == "int16"]
            before = state.used
            candidate = state.evaluate_units([raised], self.name)[0]
            if candidate is None:
                study.tell(trial, state=TrialState.FAIL)
                return
            repeats = repeats + 1 if state.used == before else 0
            spend -= state.used - before
            trial.set_constraint("shortfall", candidate.shortfall)
            study.tell(trial, candidate.cost)

    def _warm_start(
        self, state: SearchState, study: optuna.Study, space: list[str], fixed: list[str], distributions: dict
    ) -> None:
        """Every ledger candidate that raises the fixed units plus some of the space becomes a finished trial."""
        known = {tuple(sorted(t.params.items())) for t in study.get_trials(deepcopy=False)}
        for candidate in state.candidates:
            raised = set(state.raised_units(candidate))
            if not set(fixed) <= raised or not raised - set(fixed) <= set(space):
                continue
            if candidate.assignment != state.raise_units(raised):
                continue
            params = {unit: "int16" if unit in raised else "int8" for unit in space}
            if tuple(sorted(params.items())) in known:
                continue
            study.add_trial(
                create_trial(
                    params=params,
                    distributions=distributions,
                    value=candidate.cost,
                    constraints={"shortfall": candidate.shortfall},
                )
            )
