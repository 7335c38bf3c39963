"""From the cheapest passing candidate, drop raised units while every target still holds: first in
chunks (least sensitive per cost first), then one at a time until no single unit can be dropped."""

from __future__ import annotations

from autoprec.search import SearchState


class Prune:
    name = "prune"

    def applies(self, state: SearchState) -> bool:
        return state.best is not None and state.remaining > 0

    def run(self, state: SearchState) -> None:
        sensitivity = state.sensitivity()
        raised = state.raised_units(state.best)
        cost = {u: sum(state.node_costs[c] for c in state.unit_by_name[u].calibration) for u in raised}
        order = sorted(raised, key=lambda u: sensitivity.loss(u, "cosine-similarity") / max(cost[u], 1.0))
        kept = list(order)
        chunk = max(1, len(kept) // 4)
        while chunk > 1 and state.remaining > 0:
            for start in range(0, len(order), chunk):
                group = [u for u in order[start : start + chunk] if u in kept]
                if group and self._try(state, [u for u in kept if u not in group]):
                    kept = [u for u in kept if u not in group]
            chunk //= 2
        changed = True
        while changed and state.remaining > 0:
            changed = False
            for unit in list(kept):
                if self._try(state, [u for u in kept if u != unit]):
                    kept.remove(unit)
                    changed = True
        state.notes["one_minimal"] = not changed and all(
            not self._known_pass(state, [u for u in kept if u != unit]) for unit in kept
        )

    def _try(self, state: SearchState, units: list[str]) -> bool:
        candidate = state.evaluate_units([units], self.name)[0]
        return candidate is not None and candidate.passed

    def _known_pass(self, state: SearchState, units: list[str]) -> bool:
        """True unless this single drop was evaluated and failed (unknown counts as may-pass)."""
        candidate = state.known(state.raise_units(units))
        return candidate is None or candidate.passed
