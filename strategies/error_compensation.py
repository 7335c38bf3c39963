"""When all-int16 fails because the chip keeps some tensors int8, compensate the ones that hurt (the Lane story).

1. Rank the forced-int8 compensable calibration nodes by the damage each does alone: real-int16 with only
   that node back at int8, on the sensitivity samples (an analysis pass, cached, not candidates).
2. Bisect the fewest top-ranked nodes whose "ec" (int8 + int8 residual) on top of all-int16 meets the target.
3. Make all-int8 + those ec's the search base and sweep the normal units on top of it again; later
   strategies (output_filter, metric_switch, prune) keep working on that base.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from autoprec.ir import EC
from autoprec.metrics import get_metric
from autoprec.model_io import save_json
from autoprec.search import SearchState


class ErrorCompensation:
    name = "error_compensation"
    metric = "cosine-similarity"  # of the sweep on the ec base, as threshold_sweep

    def applies(self, state: SearchState) -> bool:
        failing = "ceiling_fails" in state.notes or state.best is None
        return failing and state.remaining > 0 and bool(state.profile.compensable(state.model))

    def run(self, state: SearchState) -> None:
        ranking = self.ranking(state)
        ceiling = state.baselines["all-int16"]

        def with_ec(count: int, base: dict[str, str]) -> dict[str, str]:
            return {**base, **{n: EC for n in ranking[:count]}}

        full = state.evaluate([with_ec(len(ranking), ceiling)], self.name)[0]
        state.notes["ec"] = {"ranking": ranking, "passing": full if full is not None and full.passed else None}
        if full is None or not full.passed:
            return
        low, high = 0, len(ranking)
        while high - low > 1 and state.remaining > 0:
            mid = (low + high) // 2
            candidate = state.evaluate([with_ec(mid, ceiling)], self.name)[0]
            if candidate is None:
                break
            low, high = (low, mid) if candidate.passed else (mid, high)
        state.notes["ec"]["nodes"] = ranking[:high]
        state.base = with_ec(high, state.baselines["all-int8"])
        best, largest_failing = state.sweep(state.sensitivity().ranking(self.metric), (), self.name)
        state.notes["sweep"] = {"metric": self.metric, "passing": best, "largest_failing": largest_failing}

    def ranking(self, state: SearchState) -> list[str]:
        """Compensable nodes, most damaging first (cached in the output folder like the sensitivity pass)."""
        nodes = state.profile.compensable(state.model)
        evaluator, indices = state.evaluator, state.sensitivity_indices
        identity = [evaluator.model_hash, evaluator.data_hash, state.profile.name, indices, state.target.to_json()]
        key = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:20]
        path = Path(state.out_dir) / "ec-ranking.json"
        if path.exists() and json.loads(path.read_text()).get("key") == key:
            damage = json.loads(path.read_text())["damage"]
        else:
            started, runs = time.perf_counter(), evaluator.model_runs
            real = state.baselines["real-int16"]
            reference, *scores = evaluator.evaluate_many([real, *({**real, n: "int8"} for n in nodes)], indices)
            state.sensitivity_runs += evaluator.model_runs - runs
            state.sensitivity_seconds += time.perf_counter() - started
            damage = {n: self._damage(state, reference, s) for n, s in zip(nodes, scores)}
            save_json({"key": key, "damage": damage}, path)
        outputs = state.notes.get("ceiling_fails") or [t.output for t in state.target.outputs]
        top = {out: max((d[out] for d in damage.values()), default=0.0) or 1.0 for out in outputs}
        loss = {n: max(damage[n][out] / top[out] for out in outputs) for n in nodes}
        return sorted(nodes, key=lambda n: -loss[n])

    @staticmethod
    def _damage(state: SearchState, reference, scores) -> dict[str, float]:
        """Per output: how much worse than real-int16 the target's metric gets (>= 0)."""
        result = {}
        for target in state.target.outputs:
            delta = target.value(reference) - target.value(scores)
            result[target.output] = max(0.0, delta if get_metric(target.metric).higher_is_better else -delta)
        return result
