"""Rank units by sensitivity (only-this-node-quantized) and raise the smallest prefix that meets every
target: a bisection over the prefix length, ~log2(N) evaluations instead of a hand ladder. Two rankings:
damage per unit of cost (cheap fixes first: the objective is cost) and plain damage (HMCT's ranking)."""

from __future__ import annotations

from autoprec.search import SearchState


class ThresholdSweep:
    name = "threshold_sweep"
    metric = "cosine-similarity"

    def applies(self, state: SearchState) -> bool:
        return "ceiling_fails" not in state.notes and bool(state.units)

    def run(self, state: SearchState) -> None:
        sensitivity = state.sensitivity()
        sweeps = []
        for costs in (state.unit_costs, None):
            best, largest_failing = state.sweep(sensitivity.ranking(self.metric, costs=costs), (), self.name)
            sweeps.append({"metric": self.metric, "passing": best, "largest_failing": largest_failing})
        state.notes["sweep"] = min(sweeps, key=lambda s: s["passing"].cost if s["passing"] else float("inf"))
