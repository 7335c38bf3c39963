"""Rank units by sensitivity (cosine, only-this-node-quantized) and raise the smallest prefix that
meets every target: a bisection over the prefix length, ~log2(N) evaluations instead of a hand ladder."""

from __future__ import annotations

from autoprec.search import SearchState


class ThresholdSweep:
    name = "threshold_sweep"
    metric = "cosine-similarity"

    def applies(self, state: SearchState) -> bool:
        return "ceiling_fails" not in state.notes and bool(state.units)

    def run(self, state: SearchState) -> None:
        ranking = state.sensitivity().ranking(self.metric)
        best, largest_failing = state.sweep(ranking, (), self.name)
        state.notes["sweep"] = {"metric": self.metric, "passing": best, "largest_failing": largest_failing}
