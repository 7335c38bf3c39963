"""Evaluate all-int8 and all-int16 first.

Reads: nothing. Publishes: `results.ceiling_fails` (the outputs all-int16 fails, when it fails) and
`results.one_minimal` (when all-int8 passes). Finishes the search when all-int8 passes (empty config).

    autoprec search --strategies baselines --budget 2     # just the two baselines
"""

from __future__ import annotations

from autoprec.strategy import SearchView, Strategy


class Baselines(Strategy):
    """all-int8 passing ends the search; all-int16 failing is published for strategies that exceed it."""

    name = "baselines"

    def run(self, search: SearchView) -> None:
        (int8,) = search.evaluate([search.baselines["all-int8"]])
        if int8 is not None and int8.passed:
            search.results.one_minimal = True  # nothing raised: nothing to drop
            search.finish()
            return
        (int16,) = search.evaluate([search.baselines["all-int16"]])
        if int16 is not None and not int16.passed:
            search.results.ceiling_fails = search.target.failing(int16.scores)
