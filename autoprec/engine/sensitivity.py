"""Node sensitivity (HMCT `get_sensitivity_of_nodes`), in three modes.

- `single`: quantize only the item (int8), everything else float, and measure every output.
- `raise`: everything int8, only the item raised to int16 (what matters from an int8 base).
- `drop`: everything int16 (real-int16), only the item back at int8: which forced-int8 tensors
  keep all-int16 from its ceiling (the Lane story; what error compensation should fix first).
  With node type `float`: everything at all-int16 (the profile's), only the item dropped out of the
  integer lattice to its cheapest float qtype: which tensors all-int16 itself cannot carry.

Items are search units (`node_type="node"`), weight or activation calibration nodes, the
calibration nodes the profile forces to int8 but allows error compensation on (`compensable`), or
(`float`) the units and leftover calibration nodes that may take a float qtype on the profile. One pass
measures every metric of every output, so rankings for any metric or output subset are free.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autoprec.engine.baselines import baseline_assignments
from autoprec.engine.ledger import Ledger
from autoprec.engine.units import search_units
from autoprec.errors import UserError
from autoprec.evaluate import Evaluator
from autoprec.evaluate.metrics import METRICS, get_metric
from autoprec.hardware import HardwareProfile
from autoprec.ir import FEATURE, WEIGHT
from autoprec.model_io import nested_numbers, read_cache, save_json

NODE_TYPES = ("node", "weight", "activation", "compensable", "float")
MODES = ("single", "raise", "drop")
METHODS = ("incremental", "adaptive", "full")


@dataclass
class Sensitivity:
    """item -> output -> metric -> mean over the samples used."""

    mode: str
    node_type: str
    values: dict[str, dict[str, dict[str, float]]]
    items: dict[str, list[str]] = field(default_factory=dict)
    model_runs: int = 0
    seconds: float = 0.0
    equivalents: float = 0.0  # full-model-run equivalents executed (MACs run / model MACs per sample)
    _scaled: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict, repr=False, compare=False)

    def loss(self, item: str, metric: str, outputs: list[str] | None = None) -> float:
        """Scale-free damage of an item: per output normalized by the largest over items, max over outputs."""
        metric = get_metric(metric).name
        outputs = outputs or list(next(iter(self.values.values())))
        return max(self._normalized(metric, out)[item] for out in outputs)

    def ranking(
        self, metric: str = "cosine-similarity", outputs: list[str] | None = None, costs: dict[str, float] | None = None
    ) -> list[str]:
        """Items, most important to raise first; with `costs`, by damage per unit of cost (cheap fixes first)."""
        losses = {item: self.loss(item, metric, outputs) for item in self.values}
        if costs:
            losses = {item: loss / max(costs[item], 1e-12) for item, loss in losses.items()}
        descending = not self.repairs  # single/drop measure damage; raise and float measure what is left after fixing
        return sorted(losses, key=lambda item: (-losses[item] if descending else losses[item], item))

    @property
    def repairs(self) -> bool:
        """True when the item moves up from its background (raise, float): the least damage ranks first."""
        return self.mode == "raise" or self.node_type == "float"

    def flat(self, metric: str = "cosine-similarity", outputs: list[str] | None = None) -> bool:
        """True when the metric barely separates the items: most change no output measurably (ties near 1.0)."""
        metric = get_metric(metric).name
        outputs = outputs or list(next(iter(self.values.values())))
        worst = [max(damage(metric, v[o][metric]) for o in outputs) for v in self.values.values()]
        return bool(np.mean(np.array(worst) < 1e-6) > 0.5) if worst else True

    def _normalized(self, metric: str, output: str) -> dict[str, float]:
        """item -> damage on `output` divided by the largest over items (computed once per metric and output)."""
        if (metric, output) not in self._scaled:
            raw = {item: damage(metric, v[output][metric]) for item, v in self.values.items()}
            top = max((value for value in raw.values() if math.isfinite(value)), default=0.0) or 1.0
            self._scaled[(metric, output)] = {item: value / top for item, value in raw.items()}  # inf stays inf
        return self._scaled[(metric, output)]

    def to_json(self) -> dict:
        return {"mode": self.mode, "node_type": self.node_type, "values": self.values, "items": self.items}

    @classmethod
    def from_json(cls, data: dict) -> Sensitivity:
        return cls(data["mode"], data["node_type"], data["values"], data.get("items", {}))


def damage(metric: str, value: float) -> float:
    """A non-negative 'how bad' for any metric (0 = identical to float; inf = a NaN or Inf output)."""
    if math.isnan(value):
        return math.inf
    if metric == "cosine-similarity":
        return max(0.0, 1.0 - value)
    if metric == "sqnr":
        return float(10 ** (-min(value, 300.0) / 10))
    return max(0.0, value)


def sensitivity_items(evaluator: Evaluator, profile: HardwareProfile, node_type: str) -> dict[str, list[str]]:
    """item name -> the calibration nodes it quantizes (or raises)."""
    model = evaluator.model
    if node_type == "node":
        return {u.name: list(u.calibration) for u in search_units(model, profile)}
    if node_type in ("weight", "activation"):
        kind = WEIGHT if node_type == "weight" else FEATURE
        return {n: [n] for n, c in model.calibration.items() if c.tensor_type == kind}
    if node_type == "compensable":
        return {n: [n] for n in profile.compensable(model)}
    if node_type == "float":
        units = {u.name: list(u.calibration) for u in search_units(model, profile)}
        floats = {n for n, c in model.calibration.items() if profile.float_qtype(model, c)}
        grouped = {c for cals in units.values() for c in cals}
        items = {name: cals for name, cals in units.items() if set(cals) <= floats}
        return items | {n: [n] for n in model.calibration if n in floats and n not in grouped}
    raise UserError(f"unknown node type '{node_type}'; use one of {', '.join(NODE_TYPES)}")


def measure(
    evaluator: Evaluator,
    profile: HardwareProfile,
    node_type: str = "node",
    mode: str = "single",
    indices: list[int] | None = None,
    interested: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    incremental: bool = True,
    upcoming: list[list[str]] | None = None,
) -> Sensitivity:
    """Run the sensitivity pass: one evaluation per item on the samples `indices`. `incremental` runs only the
    part of the graph downstream of each item, fed with the background's activations cached at the cut
    (`upcoming`: calibration node lists of items later calls will measure, cached in the same run)."""
    if mode not in MODES:
        raise UserError(f"unknown sensitivity mode '{mode}'; use one of {', '.join(MODES)}")
    if node_type == "float" and mode != "drop":
        raise UserError("node type 'float' is measured in mode 'drop' only (all-int16, one item left in float)")
    items = sensitivity_items(evaluator, profile, node_type)
    if interested:
        unknown = [n for n in interested if n not in items]
        if unknown:
            raise UserError(f"unknown {node_type} '{unknown[0]}' in --interested-nodes")
        items = {n: items[n] for n in interested}
    model = evaluator.model
    baselines = baseline_assignments(model, profile)
    background, level = {
        "single": ({n: "float32" for n in model.calibration}, "int8"),
        "raise": (baselines["all-int8"], "int16"),
        "drop": (baselines["real-int16"], "int8"),  # the ceiling with one node back at int8 (Lane story)
    }[mode]
    levels = dict.fromkeys(model.calibration, level)
    if node_type == "float":  # the profile's ceiling with one item left in float
        background = baselines["all-int16"]
        levels = {n: profile.float_qtype(model, c) or level for n, c in model.calibration.items()}
    started, runs_before, equivalents_before = time.perf_counter(), evaluator.model_runs, evaluator.equivalents
    values: dict[str, dict[str, dict[str, float]]] = {}
    keys = list(items)
    batch = max(evaluator.jobs, len(keys) // 20) if incremental else max(1, evaluator.jobs)
    for start in range(0, len(keys), batch):
        chunk = keys[start : start + batch]
        changes = [{c: levels[c] for c in items[item]} for item in chunk]
        if incremental:
            scored = evaluator.evaluate_changes(background, changes, indices, upcoming or [items[k] for k in keys])
        else:
            scored = evaluator.evaluate_many([{**background, **change} for change in changes], indices)
        for item, scores in zip(chunk, scored):
            values[item] = {
                out: {m: float(np.mean(scores.values[out][m])) for m in METRICS} for out in evaluator.outputs
            }
        if progress:
            progress(min(start + batch, len(keys)), len(keys))
    return Sensitivity(
        mode, node_type, values, items, evaluator.model_runs - runs_before, time.perf_counter() - started,
        evaluator.equivalents - equivalents_before,
    )  # fmt: skip


def load_or_measure(
    evaluator: Evaluator,
    profile: HardwareProfile,
    cache_dir: Path,
    node_type: str = "node",
    mode: str = "single",
    indices: list[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
    method: str = "incremental",
    shared: Ledger | None = None,
) -> Sensitivity:
    """`measure`, cached in `cache_dir` per (model, data, profile, node type, mode, samples, method).
    `method`: incremental (each item alone, only the graph below it), full (each item through the whole
    model) or adaptive (node/single only: groups of units, split where they damage; else incremental). With
    `shared` (the search's ledger on a shared storage), the exact methods split the items over the workers."""
    if method not in METHODS:
        raise UserError(f"unknown sensitivity method '{method}'; use one of {', '.join(METHODS)}")
    adaptive = method == "adaptive" and (node_type, mode) == ("node", "single")
    identity = [evaluator.model_hash, evaluator.data_hash, profile.identity, node_type, mode, indices]
    if evaluator.spec.runtime != "as-searched":  # measured on another runtime: another cache entry
        identity.append(evaluator.spec.runtime)
    if adaptive:
        identity.append(method)  # exact methods give the same numbers and share one cache entry
    key = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:20]
    path = Path(cache_dir) / f"sensitivity-{node_type}-{mode}.json"
    cached = read_sensitivity(path, node_type, mode, key)
    if cached is not None:
        return cached
    if adaptive:
        from autoprec.engine.adaptive import measure_adaptive  # adaptive builds on this module

        result = measure_adaptive(evaluator, profile, indices, progress)
    elif shared is not None:
        from autoprec.engine.shared_sensitivity import measure_shared  # builds on this module

        study = f"{shared.study.study_name}.sensitivity-{node_type}-{mode}-{key}"
        result = measure_shared(evaluator, profile, shared, study, node_type, mode, indices, progress, method)
    else:
        result = measure(evaluator, profile, node_type, mode, indices, progress=progress, incremental=method != "full")
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    save_json({"key": key, **result.to_json()}, path)
    return result


def read_sensitivity(
    path: Path, node_type: str = "node", mode: str = "single", key: str | None = None
) -> Sensitivity | None:
    """The sensitivity cached in `path` (under `key`, any when None); None when there is none, or it is unreadable
    or misshapen (then it is measured again)."""
    data = read_cache(path, key)
    if data is None or (data.get("node_type"), data.get("mode")) != (node_type, mode):
        return None
    items = data.get("items", {})
    shaped = (
        nested_numbers(data.get("values"), 3)
        and isinstance(items, dict)
        and all(isinstance(names, list) and all(isinstance(name, str) for name in names) for names in items.values())
    )
    return Sensitivity.from_json(data) if shaped else None
