"""Per-output filtering (HMCT `output_node`): when some outputs pass and others fail at the largest
failing sweep step, rank units by their sensitivity on the failing outputs only and sweep again on
top of that step.

Reads: `results.sweep` (applies only after a passing sweep). Publishes nothing.

    autoprec search --strategies baselines,threshold_sweep,output_filter,prune
"""

from __future__ import annotations

from autoprec.strategy import SearchView, Strategy


class OutputFilter(Strategy):
    """Sweep again, ranked by the still-failing outputs only."""

    name = "output_filter"

    def applies(self, search: SearchView) -> bool:
        sweep = search.results.sweep
        return sweep is not None and sweep.passing is not None

    def run(self, search: SearchView) -> None:
        sweep = search.results.sweep
        start = sweep.largest_failing
        at_start = search.evaluate_units([start])[0]
        if at_start is None or at_start.passed:
            return
        failing = [o for o in search.target.failing(at_start.scores) if o in search.outputs]
        if not failing or len(failing) == len(search.outputs):
            return
        ranking = search.sensitivity().ranking(sweep.metric, failing, search.unit_costs)
        search.sweep(ranking, start)
