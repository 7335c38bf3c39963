"""Metric switching (the YoloP story): when the cosine ranking is flat (most units tie near 1.0) and
the sweep's winner is not already cheap, or the sweep needed most of the model, rank by mse (then
sqnr) and sweep again: cosine can hide damage that L2-type metrics separate.

Reads: `results.sweep`. Publishes nothing (its candidates are labelled `metric_switch:mse`, ...).

    autoprec search --strategies baselines,threshold_sweep,metric_switch,prune
"""

from __future__ import annotations

from autoprec.strategy import SearchView, Strategy

STALLED = 0.5  # the sweep's winner costs more than half of all-int16
WORTH_IT = 0.05  # below this cost a flat ranking is not worth another sweep


class MetricSwitch(Strategy):
    """Sweep by mse, then sqnr, until a sweep is cheaper than the best so far."""

    name = "metric_switch"
    metrics = ("mse", "sqnr")

    def applies(self, search: SearchView) -> bool:
        sweep = search.results.sweep
        if sweep is None:
            return False
        if sweep.passing is None or sweep.passing.cost > STALLED:
            return True
        return sweep.passing.cost > WORTH_IT and search.sensitivity().flat(sweep.metric)

    def run(self, search: SearchView) -> None:
        for metric in self.metrics:
            ranking = search.sensitivity().ranking(metric, costs=search.unit_costs)
            best, _ = search.sweep(ranking, (), f"{self.name}:{metric}")
            current = search.best
            if best is not None and current is not None and best.cost <= current.cost and best.cost <= STALLED:
                return
