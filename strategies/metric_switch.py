"""When the cosine ranking is flat (most nodes tie near 1.0) and the sweep's winner is not already cheap,
or the sweep needed most of the model, rank by mse (then sqnr) and sweep again: cosine can hide damage
that L2-type metrics separate (the YoloP story)."""

from __future__ import annotations

from autoprec.search import SearchState

STALLED = 0.5  # the sweep's winner costs more than half of all-int16
WORTH_IT = 0.05  # below this cost a flat ranking is not worth another sweep


class MetricSwitch:
    name = "metric_switch"
    metrics = ("mse", "sqnr")

    def applies(self, state: SearchState) -> bool:
        sweep = state.notes.get("sweep")
        if not sweep or state.remaining <= 0:
            return False
        passing = sweep["passing"]
        if passing is None or passing.cost > STALLED:
            return True
        return passing.cost > WORTH_IT and state.sensitivity().flat(sweep["metric"])

    def run(self, state: SearchState) -> None:
        for metric in self.metrics:
            ranking = state.sensitivity().ranking(metric, costs=state.unit_costs)
            best, _ = state.sweep(ranking, (), f"{self.name}:{metric}")
            current = state.best
            if best is not None and current is not None and best.cost <= current.cost and best.cost <= STALLED:
                return
