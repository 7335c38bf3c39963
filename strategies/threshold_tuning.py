"""Before raising anything to int16, try other int8 ranges for the units that damage the failing outputs
most: an int8 range change costs nothing on the chip.

Calibration keeps every method's range per feature node (max, percentile-*, kl, mse). For the top units
of the sensitivity ranking on the outputs the base fails, the range sensitivity measures the base with
that one unit at each alternative range (on the sensitivity samples, not counted against the budget).
Units whose best range lowers the failing outputs' damage (1 - cosine of the worst one) by at least
`margin` of the base's get it, best gain first. The tuned base (all chosen units, then the better
half) is evaluated; the better one becomes the base later strategies raise units on, if it is closer to
the target than the base. A tuned all-int8 that passes ends the search.

Reads: the base candidate's failing outputs. Publishes: nothing (the base is changed with `set_base`).

    autoprec search --strategies baselines,threshold_tuning,threshold_sweep,prune
"""

from __future__ import annotations

from autoprec.strategy import OWN, Candidate, Option, SearchView, Strategy, at_least, fraction


class ThresholdTuning(Strategy):
    """Per-unit int8 ranges from the calibration methods, chosen by their effect on the base."""

    name = "threshold_tuning"
    metric = "cosine-similarity"
    options = {
        "units": Option(8, at_least(1), "most damaging units whose alternative ranges are measured"),
        "margin": Option(0.01, fraction, "share of the base's damage a range must remove to be chosen"),
    }

    def applies(self, search: SearchView) -> bool:
        base = search.known(search.base)
        return base is not None and not base.passed and any(search.range_choices(u.name) for u in search.units)

    def run(self, search: SearchView) -> None:
        tuned = tune_ranges(search, self.metric, search.option("units"), search.option("margin"))
        if tuned is not None and tuned.passed:
            search.finish()


def tune_ranges(search: SearchView, metric: str, count: int, margin: float) -> Candidate | None:
    """Tune the int8 ranges of the `count` units that damage the base's failing outputs most (see the module
    docstring); the better tuned candidate becomes the base if it is closer to the target. Returns it, or None
    when no range helps (the base unchanged). Costs at most 2 evaluations."""
    base = search.known(search.base)
    if base is None or base.passed:
        return None
    failing = [o for o in base.failing if o in search.outputs] or search.outputs
    ranking = [u for u in search.sensitivity().ranking(metric, outputs=failing) if search.range_choices(u)]
    measured = search.range_sensitivity(ranking[:count])
    gains: dict[str, tuple[float, str]] = {}
    for unit, by_label in measured.items():
        own = _damage(by_label[OWN], failing)
        damage, label = min((_damage(v, failing), label) for label, v in by_label.items() if label != OWN)
        if damage < (1 - margin) * own:
            gains[unit] = (own - damage, label)
    if not gains:
        return None
    units = sorted(gains, key=lambda u: -gains[u][0])
    prefixes = [units] + ([units[: len(units) // 2]] if len(units) > 1 else [])
    tuned = [_tuned(search, prefix, gains) for prefix in prefixes]
    improved = [c for c in search.evaluate(tuned) if c is not None and c.rank_key() < base.rank_key()]
    if not improved:
        return None
    winner = min(improved, key=lambda c: c.rank_key())
    search.set_base(winner.assignment)
    return winner


def _tuned(search: SearchView, units: list[str], gains: dict[str, tuple[float, str]]) -> dict[str, str]:
    assignment = search.base
    for unit in units:
        assignment.update(search.range_choices(unit)[gains[unit][1]])
    return assignment


def _damage(cosines: dict[str, float], outputs: list[str]) -> float:
    """The worst of `outputs`' damage, 1 - cosine."""
    return max(1.0 - cosines[o] for o in outputs)
