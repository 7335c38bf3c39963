"""`--method auto` (the default): score the all-int8 model of every (method, scheme); the best one's scheme is
kept, its ranges become the `best-int8` baseline, and the model's own int8 ranges (where the search starts) are
that scheme's max ranges.

Why two range sets: the best all-int8 is not the best start for a mixed config. A clipped range (kl, percentile)
spreads its clipping error over many nodes, and raising a node to int16 (over the max range) does not remove
what the clipped nodes around it lose; with max ranges the damage sits in the few nodes whose wide range
costs resolution, which int16 fixes (benchmarks/RESULTS.md, issue 14).

The score is the target metric of the search: mean cosine similarity over the calibration samples (up to
AUTO_SAMPLES), of the worst output; a non-finite output on any sample scores -inf, so it is never chosen
(magika's kl ranges give NaN on some files). Each scheme's calibrated model carries every method's range per
feature node (`CalibrationNode.alternatives`), so one simulator per scheme scores all methods through the very
"int8@<label>" assignments the search uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autoprec.data import Sample
from autoprec.evaluate.metrics import compare
from autoprec.evaluate.simulator import Simulator
from autoprec.ir import FEATURE, CalibratedModel

AUTO_SAMPLES = 8  # calibration samples each all-int8 is scored on (4 missed magika's NaN with kl)
START = "max"  # the range the search starts from, where the profile calibrates with it
METRIC = "cosine-similarity"


@dataclass(frozen=True)
class Trial:
    """One all-int8 tried by `auto`: its scheme, range label and worst output's mean cosine."""

    scheme: str
    label: str
    score: float

    def to_json(self) -> dict:
        return {"scheme": self.scheme, "label": self.label, "score": self.score if np.isfinite(self.score) else None}


def all_int8(model: CalibratedModel, label: str) -> dict[str, str]:
    """Every calibration node at int8, feature nodes with the range `label`."""
    return {n: f"int8@{label}" if c.tensor_type == FEATURE else "int8" for n, c in model.calibration.items()}


def score_schemes(models: dict[str, CalibratedModel], labels: list[str], samples: list[Sample]) -> list[Trial]:
    """Every (scheme, label)'s all-int8 score on the first AUTO_SAMPLES samples, in trial order."""
    samples = samples[:AUTO_SAMPLES]
    first = next(iter(models.values()))
    outputs = [o.name for o in first.model.graph.output]
    float_session = Simulator(first).session(None)
    references = [float_session.run(outputs, s) for s in samples]
    trials = []
    for scheme, model in models.items():
        simulator = Simulator(model)
        for name in labels:
            session = simulator.session(all_int8(model, name))
            results = [session.run(outputs, s) for s in samples]
            trials.append(Trial(scheme, name, _worst_output(references, results)))
    return trials


def best(trials: list[Trial]) -> Trial:
    """The highest score; ties go to the earlier trial (symmetric before asymmetric, max first)."""
    return max(trials, key=lambda t: t.score)


def start_label(labels: list[str], best_label: str) -> str:
    """The range the search starts from: max where the profile allows it, else the best all-int8's."""
    return START if START in labels else best_label


def _worst_output(references: list[list[np.ndarray]], results: list[list[np.ndarray]]) -> float:
    per_output = np.array([[compare(r, q)[METRIC] for r, q in zip(ref, res)] for ref, res in zip(references, results)])
    value = float(per_output.mean(axis=0).min())
    return value if np.isfinite(value) else float("-inf")
