"""Float fallback: when all-int16 misses the target, leave the few tensors it cannot carry in float.

1. Rank the float-capable items (search units, and calibration nodes outside any unit) by how much leaving
   each alone in float (float16 where the profile allows it, else float32) on top of all-int16 repairs the
   outputs all-int16 fails (sensitivity node type `float`, mode `drop`: cached, not candidates).
2. Bisect the fewest top-ranked items whose float on top of all-int16 meets the target.
3. Make all-int8 + those floats the search base (`set_base`); where calibration kept alternative int8 ranges,
   tune them on that base first (`threshold_tuning.tune_ranges`: a clipped range often keeps a unit int8
   that its own range would need int16 for), then sweep int8/int16 on the other units.
   When error compensation already found a passing sweep on its own base, the cheaper of the two sweeps
   keeps the base (ec or float for the same tensor: the cheaper one that meets the target wins).

Reads: `results.ceiling_fails`, `results.sweep`. Publishes: `results.fallback` and, when its sweep is the
cheaper, `results.sweep`.

    autoprec search --strategies baselines,float_fallback,prune
"""

from __future__ import annotations

from autoprec.strategies.threshold_tuning import tune_ranges

from autoprec.strategy import FallbackResult, Option, SearchView, Strategy, SweepResult, at_least, fraction


class FloatFallback(Strategy):
    """Float on the fewest items that lift all-int16 to the target, then sweep int8/int16 on that base."""

    name = "float_fallback"
    metric = "cosine-similarity"  # of the sweep on the float base, as threshold_sweep
    options = {
        "range_units": Option(8, at_least(0), "units whose alternative int8 ranges are tried on the float base"),
        "range_margin": Option(0.01, fraction, "share of the float base's damage a range must remove"),
    }

    def applies(self, search: SearchView) -> bool:
        return search.results.ceiling_fails is not None and bool(search.sensitivity_items("float"))

    def run(self, search: SearchView) -> None:
        outputs = [o for o in search.results.ceiling_fails or [] if o in search.outputs] or None
        sensitivity = search.sensitivity("float", "drop")
        ranking = sensitivity.ranking(self.metric, outputs)
        ceiling = search.baselines["all-int16"]

        def with_float(count: int, base: dict[str, str]) -> dict[str, str]:
            nodes = [c for item in ranking[:count] for c in sensitivity.items[item]]
            return {**base, **{c: search.float_qtype(c) for c in nodes}}

        full, fewest = search.fewest(len(ranking), lambda count: with_float(count, ceiling))
        search.results.fallback = FallbackResult(ranking, None, full)
        if full is None:
            return
        search.results.fallback.items = ranking[:fewest]
        previous_base, previous = search.base, search.results.sweep
        search.set_base(with_float(fewest, search.baselines["all-int8"]))
        floating = {n for n, q in search.base.items() if q != "int8"}
        if search.option("range_units") and any(search.range_choices(u.name) for u in search.units):
            search.evaluate([search.base])  # what the ranges are tuned against
            tune_ranges(search, self.metric, search.option("range_units"), search.option("range_margin"))
        units = [u for u in search.sensitivity().ranking(self.metric) if not floating & set(search.unit_nodes(u))]
        best, largest_failing = search.sweep(units)
        kept = previous.passing if previous is not None else None
        if kept is not None and (best is None or kept.cost <= best.cost):
            search.set_base(previous_base)  # error compensation's sweep is the cheaper: keep its base
            return
        search.results.sweep = SweepResult(self.metric, best, frozenset(largest_failing))
