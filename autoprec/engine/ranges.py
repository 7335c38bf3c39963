"""Range sensitivity: the outputs of the search's base assignment (all-int8) with one unit's feature nodes
moved to each alternative int8 range, i.e. what that range change alone does in context.

Calibration keeps every method's range per feature node (`CalibrationNode.alternatives`); a unit's
alternatives are the labels whose ranges differ from its own, and the assignment "int8@<label>"
selects one. Threshold tuning uses these numbers to pick a range before raising a unit to int16.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from autoprec.engine.units import Unit
from autoprec.evaluate import Evaluator
from autoprec.ir import FEATURE, CalibratedModel
from autoprec.model_io import nested_numbers, read_cache, save_json

METRIC = "cosine-similarity"
OWN = "own"  # the base itself, in range_sensitivity results


def unit_ranges(model: CalibratedModel, unit: Unit) -> dict[str, dict[str, str]]:
    """label -> the unit's calibration nodes at int8, its feature nodes with that range (distinct ranges only,
    the unit's own excluded; empty when its nodes carry no alternatives)."""
    features = [
        model.calibration[c] for c in unit.calibration
        if model.calibration[c].tensor_type == FEATURE and model.calibration[c].alternatives
    ]  # fmt: skip
    if not features:
        return {}
    seen = {tuple((float(np.max(f.rmin)), float(np.max(f.rmax))) for f in features)}
    choices: dict[str, dict[str, str]] = {}
    for label in features[0].alternatives:
        if not all(label in f.alternatives for f in features):
            continue
        key = tuple(f.alternatives[label] for f in features)
        if key in seen:
            continue
        seen.add(key)
        tuned = {f.name for f in features}
        choices[label] = {c: f"int8@{label}" if c in tuned else "int8" for c in unit.calibration}
    return choices


def measure_ranges(
    evaluator: Evaluator, units: list[Unit], indices: list[int], base: dict[str, str]
) -> dict[str, dict[str, dict[str, float]]]:
    """unit -> label -> output -> mean cosine over `indices` of `base` with the unit's feature nodes at that
    range; label OWN: `base` itself (one run shared by all units)."""
    jobs = [(u.name, label, nodes) for u in units for label, nodes in unit_ranges(evaluator.model, u).items()]
    scores = evaluator.evaluate_many([base] + [{**base, **nodes} for _, _, nodes in jobs], indices)
    own = {out: scores[0].aggregate(out, METRIC) for out in evaluator.outputs}
    result: dict[str, dict[str, dict[str, float]]] = {u.name: {OWN: own} for u in units}
    for (unit, label, _), score in zip(jobs, scores[1:]):
        result[unit][label] = {out: score.aggregate(out, METRIC) for out in evaluator.outputs}
    return result


def load_or_measure_ranges(
    evaluator: Evaluator, units: list[Unit], indices: list[int], base: dict[str, str], cache_dir: Path
) -> dict[str, dict[str, dict[str, float]]]:
    """`measure_ranges`, cached per unit in `cache_dir/sensitivity-ranges.json` (per model, data, samples and
    base), so a resumed or second search measures nothing again."""
    identity = [evaluator.model_hash, evaluator.data_hash, indices, sorted(base.items())]
    key = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:20]
    path = Path(cache_dir) / "sensitivity-ranges.json"
    values = (read_cache(path, key) or {}).get("values")
    values = values if nested_numbers(values, 3) else {}  # none yet, or unreadable: measured again
    missing = [u for u in units if u.name not in values]
    if missing:
        values.update(measure_ranges(evaluator, missing, indices, base))
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        save_json({"key": key, "values": values}, path)
    return {u.name: values[u.name] for u in units}
