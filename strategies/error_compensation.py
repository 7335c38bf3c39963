"""When all-int16 fails because the chip keeps some tensors int8, compensate the ones that hurt (the Lane story).

1. Rank the forced-int8 compensable calibration nodes by the damage each does alone: real-int16 with only
   that node back at int8, on the sensitivity samples (sensitivity mode `drop`: cached, not candidates).
2. Bisect the fewest top-ranked nodes whose "ec" (int8 + int8 residual) on top of all-int16 meets the target.
3. Make all-int8 + those ec's the search base and sweep the normal units on top of it again; later
   strategies (output_filter, metric_switch, prune) keep working on that base.
"""

from __future__ import annotations

from autoprec.ir import EC
from autoprec.search import SearchState


class ErrorCompensation:
    name = "error_compensation"
    metric = "cosine-similarity"  # of the sweep on the ec base, as threshold_sweep

    def applies(self, state: SearchState) -> bool:
        failing = "ceiling_fails" in state.notes or state.best is None
        return failing and state.remaining > 0 and bool(state.profile.compensable(state.model))

    def run(self, state: SearchState) -> None:
        ranking = self.ranking(state)
        ceiling = state.baselines["all-int16"]

        def with_ec(count: int, base: dict[str, str]) -> dict[str, str]:
            return {**base, **{n: EC for n in ranking[:count]}}

        full = state.evaluate([with_ec(len(ranking), ceiling)], self.name)[0]
        state.notes["ec"] = {"ranking": ranking, "passing": full if full is not None and full.passed else None}
        if full is None or not full.passed:
            return
        low, high = 0, len(ranking)
        while high - low > 1 and state.remaining > 0:
            mid = (low + high) // 2
            candidate = state.evaluate([with_ec(mid, ceiling)], self.name)[0]
            if candidate is None:
                break
            low, high = (low, mid) if candidate.passed else (mid, high)
        state.notes["ec"]["nodes"] = ranking[:high]
        state.base = with_ec(high, state.baselines["all-int8"])
        best, largest_failing = state.sweep(state.sensitivity().ranking(self.metric), (), self.name)
        state.notes["sweep"] = {"metric": self.metric, "passing": best, "largest_failing": largest_failing}

    def ranking(self, state: SearchState) -> list[str]:
        """Compensable nodes, most damaging first on the outputs all-int16 fails (a cached analysis pass)."""
        outputs = [o for o in state.notes.get("ceiling_fails", []) if o in state.evaluator.outputs] or None
        return state.sensitivity("compensable", "drop").ranking(self.metric, outputs)
