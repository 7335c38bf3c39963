"""Evaluate all-int8 and all-int16 first: if all-int8 passes the search is done (empty config);
if all-int16 fails, say which outputs, and leave it to strategies that can exceed all-int16."""

from __future__ import annotations

from autoprec.search import SearchState


class Baselines:
    name = "baselines"

    def applies(self, state: SearchState) -> bool:
        return True

    def run(self, state: SearchState) -> None:
        (int8,) = state.evaluate([state.baselines["all-int8"]], self.name)
        if int8 is not None and int8.passed:
            state.done = True
            state.notes["one_minimal"] = True  # nothing raised: nothing to drop
            return
        (int16,) = state.evaluate([state.baselines["all-int16"]], self.name)
        if int16 is not None and not int16.passed:
            state.notes["ceiling_fails"] = state.target.failing(int16.scores)
