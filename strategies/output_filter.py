"""When some outputs pass and others fail at the largest failing sweep step, rank units by their
sensitivity on the failing outputs only, and sweep again on top of that step (HMCT `output_node`)."""

from __future__ import annotations

from autoprec.search import SearchState


class OutputFilter:
    name = "output_filter"

    def applies(self, state: SearchState) -> bool:
        sweep = state.notes.get("sweep")
        return bool(sweep and sweep["passing"] is not None and state.remaining > 0)

    def run(self, state: SearchState) -> None:
        start = state.notes["sweep"]["largest_failing"]
        at_start = state.evaluate_units([start], self.name)[0]
        if at_start is None or at_start.passed:
            return
        failing = [o for o in state.target.failing(at_start.scores) if o in state.evaluator.outputs]
        if not failing or len(failing) == len(state.evaluator.outputs):
            return
        ranking = state.sensitivity().ranking(state.notes["sweep"]["metric"], failing, state.unit_costs)
        state.sweep(ranking, start, self.name)
