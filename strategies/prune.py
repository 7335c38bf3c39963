"""From the cheapest passing candidate, drop raised units while every target still holds: first the
largest droppable prefix of the units ordered by least damage per cost (a bisection, ~log2 N
evaluations), then one unit at a time until no single one can be dropped (1-minimal).

Reads: `search.best`. Publishes: `results.one_minimal` (every single drop was evaluated and fails).
"""

from __future__ import annotations

from autoprec.strategy import SearchView, Strategy, bisect


class Prune(Strategy):
    """Make the best passing set 1-minimal."""

    name = "prune"

    def applies(self, search: SearchView) -> bool:
        return search.best is not None

    def run(self, search: SearchView) -> None:
        raised = set(search.raised_units(search.best))
        ranking = search.sensitivity().ranking(costs=search.unit_costs)
        order = [u for u in reversed(ranking) if u in raised]

        def keeping_fails(k: int) -> bool | None:  # dropping order[:k] fails?
            return None if search.remaining <= 0 else not self._passes(search, order[k:])

        low, _ = bisect(0, len(order), keeping_fails)  # dropping order[:low] passes
        kept = order[low:]
        changed = True
        while changed and search.remaining > 0:
            changed = False
            for unit in list(kept):
                if search.remaining > 0 and self._passes(search, [u for u in kept if u != unit]):
                    kept.remove(unit)
                    changed = True
        search.results.one_minimal = all(self._known_to_fail(search, [u for u in kept if u != unit]) for unit in kept)

    def _passes(self, search: SearchView, units: list[str]) -> bool:
        candidate = search.evaluate_units([units])[0]
        return candidate is not None and candidate.passed

    def _known_to_fail(self, search: SearchView, units: list[str]) -> bool:
        candidate = search.known(search.raise_units(units))
        return candidate is not None and not candidate.passed
