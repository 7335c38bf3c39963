"""Rank units by sensitivity (only-this-node-quantized) and raise the smallest prefix that meets every
target: a bisection over the prefix length, ~log2(N) evaluations instead of a hand ladder.

Two rankings are swept: damage per unit of cost (cheap fixes first: the objective is cost) and plain
damage (HMCT's ranking). Reads: `results.ceiling_fails` (does not apply when all-int16 fails).
Publishes: `results.sweep` (the cheaper of the two sweeps: its passing candidate and largest failing set).

    autoprec search --strategies baselines,threshold_sweep
"""

from __future__ import annotations

from autoprec.strategy import SearchView, Strategy, SweepResult


class ThresholdSweep(Strategy):
    """Bisect "raise the k most sensitive units" for the smallest passing k."""

    name = "threshold_sweep"
    metric = "cosine-similarity"

    def applies(self, search: SearchView) -> bool:
        return search.results.ceiling_fails is None and bool(search.units)

    def run(self, search: SearchView) -> None:
        sensitivity = search.sensitivity()
        sweeps = []
        for costs in (search.unit_costs, None):
            best, largest_failing = search.sweep(sensitivity.ranking(self.metric, costs=costs))
            sweeps.append(SweepResult(self.metric, best, frozenset(largest_failing)))
        search.results.sweep = min(sweeps, key=lambda s: s.passing.cost if s.passing else float("inf"))
