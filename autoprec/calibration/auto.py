"""`--method auto` (the default): score the all-int8 model of every (method, scheme); the best one's scheme is
kept, its ranges become the `best-int8` baseline, and the model's own int8 ranges (where the search starts) are
that scheme's max ranges.

Why two range sets: the best all-int8 is not the best start for a mixed config. A clipped range (kl, percentile)
spreads its clipping error over many nodes, and raising a node to int16 (over the max range) does not remove
what the clipped nodes around it lose; with max ranges the damage sits in the few nodes whose wide range
costs resolution, which int16 fixes (benchmarks/RESULTS.md, issue 14).

The score is the target metric of the search: mean cosine similarity over the first AUTO_SAMPLES calibration
samples, of the worst output; a non-finite output scores -inf, so it is never chosen (magika's symmetric kl
ranges score 0.975 on 4 files and give NaN on the sixth), and the best all-int8 also runs on any further
calibration samples: a non-finite output there rejects it too. 8 samples, not 4: on ocr_det the best of 4
(percentile 99.999) was not the best on held-out images (0.905 vs mse's 0.925), the best of 8 was.
Each scheme's calibrated model carries every method's range per feature node (`CalibrationNode.alternatives`), so
one simulator per scheme scores all methods through the very "int8@<label>" assignments the search uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autoprec.data import Sample
from autoprec.evaluate.metrics import compare
from autoprec.evaluate.simulator import Simulator
from autoprec.ir import FEATURE, CalibratedModel

AUTO_SAMPLES = 8  # calibration samples each all-int8 is scored on (the best one also runs on any others)
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
    """Every (scheme, label)'s all-int8 score on the first AUTO_SAMPLES samples, in trial order; the best one is
    then run on the other calibration samples, and scores -inf (and the next best is run) if any output there is
    non-finite."""
    scored, rest = samples[:AUTO_SAMPLES], samples[AUTO_SAMPLES:]
    first = next(iter(models.values()))
    outputs = [o.name for o in first.model.graph.output]
    float_session = Simulator(first).session(None)
    references = [float_session.run(outputs, s) for s in scored]
    simulators = {scheme: Simulator(model) for scheme, model in models.items()}
    trials = []
    for scheme, model in models.items():
        for name in labels:
            session = simulators[scheme].session(all_int8(model, name))
            results = [session.run(outputs, s) for s in scored]
            trials.append(Trial(scheme, name, _worst_output(references, results)))
    for k in sorted(range(len(trials)), key=lambda k: -trials[k].score):
        trial = trials[k]
        if not np.isfinite(trial.score):
            break
        session = simulators[trial.scheme].session(all_int8(models[trial.scheme], trial.label))
        if all(np.all(np.isfinite(r)) for s in rest for r in session.run(outputs, s)):
            break
        trials[k] = Trial(trial.scheme, trial.label, float("-inf"))
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
