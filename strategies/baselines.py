"""Evaluate all-int8 (with best-int8, the best method's ranges, when calibrate --method auto kept them) and
all-int16 first.

Reads: nothing. Publishes: `results.ceiling_fails` (the outputs all-int16 fails, when it fails) and
`results.one_minimal` (when all-int8 or best-int8 passes). Finishes the search when either passes (nothing
raised; the search base stays all-int8).

    autoprec search --strategies baselines --budget 2     # just the two baselines
"""

from __future__ import annotations

from autoprec.strategy import SearchView, Strategy


class Baselines(Strategy):
    """all-int8 passing ends the search; all-int16 failing is published for strategies that exceed it."""

    name = "baselines"

    def run(self, search: SearchView) -> None:
        int8 = [search.baselines[b] for b in ("all-int8", "best-int8") if b in search.baselines]
        if any(c is not None and c.passed for c in search.evaluate(int8)):
            search.results.one_minimal = True  # nothing raised: nothing to drop
            search.finish()
            return
        (int16,) = search.evaluate([search.baselines["all-int16"]])
        if int16 is not None and not int16.passed:
            search.results.ceiling_fails = search.target.failing(int16.scores)
