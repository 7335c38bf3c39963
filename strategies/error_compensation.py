"""Error compensation (the Lane story): when all-int16 fails because the chip keeps some tensors int8,
compensate the ones that hurt.

1. Rank the forced-int8 compensable calibration nodes by the damage each does alone: real-int16 with only
   that node back at int8, on the sensitivity samples (sensitivity mode `drop`: cached, not candidates).
2. Bisect the fewest top-ranked nodes whose "ec" (int8 + int8 residual) on top of all-int16 meets the target.
3. Make all-int8 + those ec's the search base (`set_base`) and sweep the normal units on top of it again;
   later strategies (output_filter, metric_switch, prune) keep working on that base.

Reads: `results.ceiling_fails`. Publishes: `results.compensation` and `results.sweep` (the sweep on the ec base).

    autoprec search --profile hmct --strategies baselines,threshold_sweep,error_compensation,prune
"""

from __future__ import annotations

from autoprec.ir import EC
from autoprec.strategy import CompensationResult, SearchView, Strategy, SweepResult


class ErrorCompensation(Strategy):
    """ec on the fewest forced-int8 nodes that lift all-int16 to the target, then sweep on that base."""

    name = "error_compensation"
    metric = "cosine-similarity"  # of the sweep on the ec base, as threshold_sweep

    def applies(self, search: SearchView) -> bool:
        failing = search.results.ceiling_fails is not None or search.best is None
        return failing and bool(search.profile.compensable(search.model))

    def run(self, search: SearchView) -> None:
        ranking = self.ranking(search)
        ceiling = search.baselines["all-int16"]

        def with_ec(count: int, base: dict[str, str]) -> dict[str, str]:
            return {**base, **{n: EC for n in ranking[:count]}}

        full, fewest = search.fewest(len(ranking), lambda count: with_ec(count, ceiling))
        search.results.compensation = CompensationResult(ranking, None, full)
        if full is None:
            return
        search.results.compensation.nodes = ranking[:fewest]
        search.set_base(with_ec(fewest, search.baselines["all-int8"]))
        best, largest_failing = search.sweep(search.sensitivity().ranking(self.metric))
        search.results.sweep = SweepResult(self.metric, best, frozenset(largest_failing))

    def ranking(self, search: SearchView) -> list[str]:
        """Compensable nodes, most damaging first on the outputs all-int16 fails (a cached analysis pass)."""
        outputs = [o for o in (search.results.ceiling_fails or []) if o in search.outputs] or None
        return search.sensitivity("compensable", "drop").ranking(self.metric, outputs)
