"""Range coverage: do held-out samples the calibration never saw stay inside the calibrated ranges?

A held-out folder can hold inputs the calibration samples did not: magika's softmax denominator reached 3.34 on
unseen files where float itself is unsure, against 1.76 on the calibration files. Such a tensor is clipped at int8
and at int16 alike (int16 quantizes with the calibration's full range), so all-int16 misses too and no int8/int16
mix can search the error away: the samples need calibrating on. One float run over the held-out samples finds them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from autoprec.evaluate import Evaluator
from autoprec.ir import FEATURE

# a tensor is out of range when a held-out sample goes past it by more than its own width (twice its range). Past
# by less is common and mostly harmless: on the demo models' unseen samples, layout went 0.74 widths past, vad 0.44,
# while their winners held; magika's denominator went 2.08 widths past, and all-int16 missed
BEYOND = 1.0


@dataclass(frozen=True)
class RangeExcess:
    """A calibrated tensor that held-out samples push past the widest range an int8 or int16 choice gives it."""

    node: str  # the calibration node
    calibrated: tuple[float, float]  # the widest range an integer choice uses (its int16 range)
    seen: tuple[float, float]  # min and max over the held-out samples
    samples: int  # held-out samples that go past it by more than BEYOND of its width

    @property
    def beyond(self) -> float:
        """How far past the range the held-out samples go, as a share of its width."""
        low, high = self.calibrated
        return max(self.seen[1] - high, low - self.seen[0]) / max(high - low, 1e-30)

    def to_json(self) -> dict:
        return {"node": self.node, "calibrated": list(self.calibrated), "seen": list(self.seen),
                "samples": self.samples}  # fmt: skip


def out_of_range(held: Evaluator) -> list[RangeExcess]:
    """The calibrated activations that `held`'s samples (run on the float model) push more than BEYOND of their
    range width past the widest range an int8 or int16 choice uses (the int16 one), farthest first."""
    model = held.model
    nodes = [c for c in model.calibration.values() if c.tensor_type == FEATURE]
    ranges = {c.name: tuple(float(f(r)) for f, r in zip((np.min, np.max), c.range_of("int16"))) for c in nodes}
    built = held.simulator.build(None)  # the float graph the references run, big weights fed from memory
    graph = built.proto.graph
    known = {i.name for i in graph.input} | {o.name for o in graph.output}
    graph.output.extend(onnx.helper.make_empty_tensor_value_info(t) for t in sorted({c.tensor for c in nodes} - known))
    session = held.simulator.open(built)
    names = [o.name for o in session.get_outputs()]
    seen: dict[str, list[float]] = {}
    past: dict[str, int] = {}
    for index in range(held.num_samples):
        sample = held.sample(index)
        values = dict(zip(names, session.run(None, sample))) | sample
        for c in nodes:
            value = np.asarray(values[c.tensor], dtype=np.float64)
            if value.size == 0 or not np.isfinite(value).all():
                continue
            low, high = float(value.min()), float(value.max())
            old = seen.setdefault(c.name, [low, high])
            seen[c.name] = [min(old[0], low), max(old[1], high)]
            rlow, rhigh = ranges[c.name]
            past[c.name] = past.get(c.name, 0) + (max(high - rhigh, rlow - low) > BEYOND * (rhigh - rlow))
    found = [RangeExcess(n, ranges[n], (s[0], s[1]), past[n]) for n, s in seen.items() if past[n]]
    return sorted(found, key=lambda e: -e.beyond)


def coverage_advice(excesses: list[RangeExcess], num_samples: int) -> str | None:
    """One line naming the farthest out-of-range tensor and what to do, or None when every range holds."""
    if not excesses:
        return None
    top = excesses[0]
    others = f" and {len(excesses) - 1} more" if len(excesses) > 1 else ""
    return (
        f"held-out samples go past the calibrated range of {top.node}{others}, which every int8 and int16 choice "
        f"clips: {top.seen[0]:.4g} to {top.seen[1]:.4g} on {top.samples} of {num_samples} samples, calibrated "
        f"{top.calibrated[0]:.4g} to {top.calibrated[1]:.4g}; calibrate with samples like them"
    )
