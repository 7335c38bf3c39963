"""HMCT's cumulative error curves, as data.

- `ranking_curve`: all-int8 with the k most sensitive units raised to int16, each output's score as k grows
  (HMCT's `non_quantize_node=[nodes[:1], nodes[:2], ...]`, with int16 instead of float): where the
  target is crossed, and what the sensitivity order buys. ~12-16 points on the sensitivity samples.
- `depth_curve`: HMCT's `plot_acc_error`: cosine of every node's output against the float model, in graph
  order, with only weights / only activations / everything at int8 (intermediates as extra outputs, one run).
"""

from __future__ import annotations

import numpy as np

from autoprec.engine.sensitivity import Sensitivity
from autoprec.engine.target import Target
from autoprec.engine.units import raise_units, search_units
from autoprec.evaluate import Evaluator
from autoprec.evaluate.metrics import compare
from autoprec.hardware import HardwareProfile
from autoprec.ir import FEATURE, WEIGHT
from autoprec.report.tensors import node_outputs, tensor_session

CURVES = {"weight": WEIGHT, "activation": FEATURE, "all": None}
MAX_POINTS = 200  # nodes on a depth curve: every run returns each point's tensor, so this bounds the memory


def ranking_curve(
    evaluator: Evaluator, profile: HardwareProfile, sensitivity: Sensitivity, target: Target, indices: list[int],
    points: int = 12,
) -> dict:  # fmt: skip
    """{"k": [...], "units": [...], "outputs": {output: [value at each k]}} (values: the target's metric)."""
    units = {u.name: u for u in search_units(evaluator.model, profile)}
    ranking = [name for name in sensitivity.ranking() if name in units]
    ks = sorted({int(round(k)) for k in np.linspace(0, len(ranking), min(points, len(ranking) + 1))})
    base = {n: "int8" for n in evaluator.model.calibration}
    assignments = [raise_units(base, [units[n] for n in ranking[:k]]) for k in ks]
    scores = evaluator.evaluate_many(assignments, indices)
    outputs = {t.output: [t.value(s) for s in scores] for t in target.outputs}
    return {"k": ks, "units": ranking, "outputs": outputs, "samples": len(indices)}


def depth_curve(evaluator: Evaluator, indices: list[int], curves: tuple[str, ...] = tuple(CURVES)) -> dict:
    """{"nodes": [...], "curves": {name: [mean cosine of each node's output vs float]}} at up to MAX_POINTS
    nodes; one sample at a time, so only one sample's intermediates are held."""
    model = evaluator.model
    points = node_outputs(model)
    if len(points) > MAX_POINTS:  # evenly along the graph, always ending at the last node
        points = [points[int(k)] for k in np.linspace(0, len(points) - 1, MAX_POINTS)]
    tensors = [t for _, t in points]
    reference = tensor_session(model, None, tensors)
    sessions = {}
    for name in curves:
        kind = CURVES[name]
        assignment = {
            n: ("int8" if kind is None or c.tensor_type == kind else "float32") for n, c in model.calibration.items()
        }
        sessions[name] = tensor_session(model, assignment, tensors)
    sums = {name: np.zeros(len(tensors)) for name in curves}
    floating = np.ones(len(tensors), dtype=bool)
    for i in indices:
        sample = evaluator.sample(i)
        refs = reference.run(tensors, sample)
        floating &= [np.issubdtype(r.dtype, np.floating) for r in refs]
        for name, session in sessions.items():
            for k, (r, q) in enumerate(zip(refs, session.run(tensors, sample))):
                if floating[k]:
                    sums[name][k] += compare(r, q)["cosine-similarity"]
    keep = np.flatnonzero(floating)
    return {
        "nodes": [points[k][0] for k in keep],
        "curves": {name: [float(sums[name][k] / len(indices)) for k in keep] for name in curves},
        "samples": len(indices),
    }
