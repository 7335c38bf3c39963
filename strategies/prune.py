"""From the cheapest passing candidate, drop raised units while every target still holds: first the
largest droppable prefix of the units ordered by least damage per cost (a bisection, ~log2 N
evaluations), then one unit at a time until no single one can be dropped (1-minimal)."""

from __future__ import annotations

from autoprec.search import SearchState


class Prune:
    name = "prune"

    def applies(self, state: SearchState) -> bool:
        return state.best is not None and state.remaining > 0

    def run(self, state: SearchState) -> None:
        raised = set(state.raised_units(state.best))
        ranking = state.sensitivity().ranking(costs=state.unit_costs)
        order = [u for u in reversed(ranking) if u in raised]
        low, high = 0, len(order)  # dropping order[:low] passes; dropping order[:high] is not known to
        while high - low > 1 and state.remaining > 0:
            mid = (low + high) // 2
            if self._passes(state, order[mid:]):
                low = mid
            else:
                high = mid
        kept = order[low:]
        changed = True
        while changed and state.remaining > 0:
            changed = False
            for unit in list(kept):
                if state.remaining > 0 and self._passes(state, [u for u in kept if u != unit]):
                    kept.remove(unit)
                    changed = True
        state.notes["one_minimal"] = all(self._known_to_fail(state, [u for u in kept if u != unit]) for unit in kept)

    def _passes(self, state: SearchState, units: list[str]) -> bool:
        candidate = state.evaluate_units([units], self.name)[0]
        return candidate is not None and candidate.passed

    def _known_to_fail(self, state: SearchState, units: list[str]) -> bool:
        candidate = state.known(state.raise_units(units))
        return candidate is not None and not candidate.passed
