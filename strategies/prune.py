"""From the cheapest passing candidate, lower entries one lattice step (float32 -> float16 -> int16 -> int8,
ec -> int8, skipping qtypes the profile does not allow) while every target still holds: first the largest
lowerable prefix of the units ordered by least damage per cost (a bisection, ~log2 N evaluations), then
one unit at a time, then one entry at a time, where an entry is a unit's weights or its activations (a
Conv's weight may go back to int8 while its input stays int16: half the MACs cost on the chip), until no
single entry can be lowered (1-minimal). An entry lowered to int8 takes the search base's int8 range (the
"int8@<method>" range a strategy tuned there, e.g. float_fallback), not its calibrated one. With budget left,
a unit with int16 activations then tries them at each of their other int8 ranges (calibration `--method auto`
keeps every method's) with its weights one step lower too, and a lowering that passes starts the entry pass
again.

Reads: `search.best`. Publishes: `results.one_minimal` (every single one-step lowering of an entry was
evaluated and fails).
"""

from __future__ import annotations

from collections.abc import Sequence

from autoprec.ir import FEATURE, WEIGHT, CalibrationNode, parse_qtype
from autoprec.ir.records import FULL_RANGE
from autoprec.strategy import SearchView, Strategy, bisect


class Prune(Strategy):
    """Make the best passing candidate 1-minimal on the qtype lattice."""

    name = "prune"

    def applies(self, search: SearchView) -> bool:
        return search.best is not None

    def run(self, search: SearchView) -> None:
        current = dict(search.best.assignment)
        ranking = search.sensitivity().ranking(costs=search.unit_costs)
        units = [search.unit_nodes(u) for u in reversed(ranking)]  # least damage per cost first
        grouped = {n for nodes in units for n in nodes}
        units += [(n,) for n in current if n not in grouped]  # ec / float on nodes outside every unit
        units = [nodes for nodes in units if any(current[n] != "int8" for n in nodes)]

        def lowering_fails(k: int) -> bool | None:
            return (
                None if search.remaining <= 0 else not self._passes(search, self._lowered(search, current, units[:k]))
            )

        low, _ = bisect(0, len(units), lowering_fails)  # lowering units[:low] passes
        current = self._lowered(search, current, units[:low])
        current = self._one_at_a_time(search, current, units)
        entries = [
            part
            for unit in units
            for part in (
                tuple(n for n in unit if search.model.calibration[n].tensor_type == kind) for kind in (FEATURE, WEIGHT)
            )
            if part
        ]
        current = self._one_at_a_time(search, current, entries)
        while (lowered := self._other_range(search, current, units)) is not None:
            current = self._one_at_a_time(search, lowered, entries)
        steps = [t for t in (self._lowered(search, current, [e]) for e in entries) if t != current]
        search.results.one_minimal = all(self._known_to_fail(search, t) for t in steps)

    def _one_at_a_time(
        self, search: SearchView, current: dict[str, str], entries: list[Sequence[str]]
    ) -> dict[str, str]:
        """Lower single entries while one passes, until none does (or the budget ends)."""
        changed = True
        while changed and search.remaining > 0:
            changed = False
            for entry in entries:
                trial = self._lowered(search, current, [entry])
                if trial != current and search.remaining > 0 and self._passes(search, trial):
                    current, changed = trial, True
        return current

    def _other_range(
        self, search: SearchView, current: dict[str, str], units: list[Sequence[str]]
    ) -> dict[str, str] | None:
        """The first unit with int16 activations moved to int8 at one of their other ranges (distinct, not the
        base's, not yet evaluated), its weights one step lower too, that passes; None if none does or the
        budget ends."""
        calibration = search.model.calibration
        for unit in units:
            features = [n for n in unit if calibration[n].tensor_type == FEATURE and current[n] == "int16"]
            if not features:
                continue
            weights = tuple(n for n in unit if calibration[n].tensor_type == WEIGHT)
            lowered = self._lowered(search, current, [weights])
            ranges = {
                tuple(calibration[n].alternatives.get(label) for n in features): label
                for n in features for label in calibration[n].alternatives
            }  # fmt: skip
            tried = tuple(_range(calibration[n], search.base[n]) for n in features)  # the unit pass's lowering
            labels = sorted((label for key, label in ranges.items() if key != tried), key=lambda x: x == FULL_RANGE)
            for label in labels:  # clipped ranges first: the unclipped one rarely wins at 8 bits
                trial = {**lowered, **{n: f"int8@{label}" for n in features if label in calibration[n].alternatives}}
                if search.remaining <= 0:
                    return None
                if search.known(trial) is None and self._passes(search, trial):
                    return trial
        return None

    def _lowered(self, search: SearchView, assignment: dict[str, str], entries: list[Sequence[str]]) -> dict:
        """`assignment` with every node of `entries` one lattice step lower (nodes at int8 stay)."""
        result, base = dict(assignment), search.base
        for entry in entries:
            for node in entry:
                lower = search.lower(node, assignment[node])
                if lower is not None and search.lower(node, lower) is None and search.lower(node, base[node]) is None:
                    lower = base[node]  # int8 at the base's range ("int8@<method>" where a strategy tuned it)
                result[node] = lower or assignment[node]
        return result

    def _passes(self, search: SearchView, assignment: dict[str, str]) -> bool:
        candidate = search.evaluate([assignment])[0]
        return candidate is not None and candidate.passed

    def _known_to_fail(self, search: SearchView, assignment: dict[str, str]) -> bool:
        candidate = search.known(assignment)
        return candidate is not None and not candidate.passed


def _range(cal: CalibrationNode, qtype: str) -> tuple[float, float]:
    """The (rmin, rmax) an int8 qtype quantizes a feature node with, as `alternatives` stores ranges."""
    label = parse_qtype(qtype)[1]
    return cal.alternatives[label] if label else (float(cal.rmin), float(cal.rmax))
