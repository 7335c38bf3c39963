"""quant_config (HMCT schema) <-> assignment (calibration node -> qtype).

    {"model_config": {"all_node_type": "int8", "activation": {...}},
     "node_config": {"Conv_3": {"qtype": "int16"}, "Conv_360": {"input1": "ec"}, "Add_7": {"input0": "float32"},
                     "Sqrt_9": {"qtype": "float16"}},
     "subgraph_config": {"det_head": {"inputs": [...], "outputs": [...], "qtype": "int16"}}}

As in HMCT, `qtype` (on a node, a subgraph, or `all_node_type`) sets the node's FEATURE (activation)
inputs that the hardware profile allows that qtype on (`HardwareProfile.allowed`: int8, int16, float16,
float32; ec on forced-int8 inputs); weights follow their own calibration nodes, addressed as `inputN`
(`{"qtype": "int16", "input1": "int16"}`: A16W16). A subgraph covers every node on a path from its inputs
to its outputs. Emitted configs use only entries that mean the same to HMCT.

HMCT's node_config has no per-node threshold key: an int8 input the search gave another calibration
method's range ("int8@kl") goes into an autoprec key beside it, addressed like node_config,
`"threshold_config": {"Conv_3": {"input0": {"method": "kl", "min": -1.5, "max": 2.25}}}` (a compiler
that reads only HMCT's keys gets these thresholds from the exported calibrated model instead).
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np

from autoprec.errors import UserError
from autoprec.hardware import HardwareProfile
from autoprec.ir import ASSIGNABLE, EC, FEATURE, CalibratedModel, CalibrationNode, base_qtype, parse_qtype
from autoprec.model_io import read_user_json

CONFIG_KEYS = ("model_config", "node_config", "subgraph_config", "threshold_config")


def to_quant_config(
    model: CalibratedModel,
    assignment: dict[str, str],
    profile: HardwareProfile,
    subgraphs: dict[str, dict] | None = None,
) -> dict:
    """The HMCT quant_config of `assignment` (relative to an all-int8 model)."""
    settings = model.settings
    config: dict = {"model_config": {"all_node_type": "int8"}, "node_config": {}}
    if "method" in settings or settings.get("format") != "hmct":  # unknown HMCT calibration: leave HMCT's own
        config["model_config"]["activation"] = {
            "calibration_type": settings.get("method", "max"),
            "max_percentile": round(settings.get("percentile", 99.999) / 100, 8),
            "per_channel": settings.get("per_channel", True),
            "asymmetric": settings.get("asymmetric", False),
        }
        if settings.get("unsigned"):  # symmetric, uint8/uint16 with zero point 0 on never-negative tensors
            config["model_config"]["activation"]["unsigned"] = True
    covered: set[str] = set()
    if subgraphs:
        config["subgraph_config"] = subgraphs
        for spec in subgraphs.values():
            for node in subgraph_nodes(model, spec["inputs"], spec["outputs"]):
                covered.update(c.name for c in qtype_targets(model, profile, node, "int16"))
    thresholds = threshold_config(model, assignment)
    if thresholds:
        config["threshold_config"] = thresholds
    for node in model.model.graph.node:
        cals = [c for c in model.input_calibrations(node.name) if c.name not in covered]
        qtypes = {c.name: base_qtype(assignment.get(c.name, "int8")) for c in cals}
        changed = {name: qtype for name, qtype in qtypes.items() if qtype != "int8"}
        if not changed:
            continue
        entry = {}
        common = set(changed.values())
        qtype = common.pop() if len(common) == 1 else None
        targets = (
            {c.name for c in qtype_targets(model, profile, node.name, qtype)} if qtype not in (None, EC) else set()
        )
        if targets and targets <= set(changed):
            entry["qtype"] = qtype
            changed = {name: q for name, q in changed.items() if name not in targets}
        for name, qtype in changed.items():
            index = next(i for n, i in model.calibration[name].consumers if n == node.name)
            entry[f"input{index}"] = qtype
        config["node_config"][node.name] = entry
    return config


def read_quant_config(path: Path) -> dict:
    """A quant_config JSON file (one-line errors for a missing file or bad JSON)."""
    return read_user_json(path, "quant_config JSON file")


def threshold_config(model: CalibratedModel, assignment: dict[str, str]) -> dict[str, dict[str, dict]]:
    """node -> inputN -> {method, min, max} of every calibration node given another method's range."""
    config: dict[str, dict[str, dict]] = {}
    for name, qtype in assignment.items():
        label = parse_qtype(qtype)[1]
        if label is None:
            continue
        cal = model.calibration[name]
        low, high = cal.alternatives[label]
        for node, index in cal.consumers:
            config.setdefault(node, {})[f"input{index}"] = {"method": label, "min": low, "max": high}
    return config


def from_quant_config(model: CalibratedModel, config: dict, profile: HardwareProfile) -> dict[str, str]:
    """The assignment a quant_config describes; unknown node names are a UserError."""
    if not isinstance(config, dict) or not set(config) <= set(CONFIG_KEYS):
        raise UserError(f"a quant_config has only {', '.join(CONFIG_KEYS)} keys")
    _check_types(config)
    default = config.get("model_config", {}).get("all_node_type", "int8")
    _check_qtype(default, "model_config.all_node_type")
    if default == EC:
        raise UserError("model_config.all_node_type cannot be ec; set ec per input in node_config")
    assignment = {n: "int8" for n in model.calibration}
    for node in model.model.graph.node:
        _set_node(model, profile, assignment, node.name, default)
    for name, spec in config.get("subgraph_config", {}).items():
        qtype = spec.get("qtype", "int16")
        _check_qtype(qtype, f"subgraph_config.{name}")
        for node in subgraph_nodes(model, spec.get("inputs", []), spec.get("outputs", [])):
            _set_node(model, profile, assignment, node, qtype)
    for node, spec in config.get("node_config", {}).items():
        if node not in model.nodes:
            raise UserError(f"node_config names unknown node '{node}'; see `autoprec sensitivity` for node names")
        for key, qtype in spec.items():
            _check_qtype(qtype, f"node_config.{node}.{key}")
            if key == "qtype":
                _set_node(model, profile, assignment, node, qtype, explicit=True)
            elif key.startswith("input") and key[5:].isdigit():
                cal = model.find_input_calibration(node, int(key[5:]))
                if cal is None:
                    raise UserError(f"node_config.{node}.{key}: that input has no calibration node")
                _set_input(model, profile, assignment, cal.name, qtype, f"node_config.{node}.{key}")
            else:
                raise UserError(f"node_config.{node}: unknown key '{key}'; use qtype or input<N>")
    for node, inputs in config.get("threshold_config", {}).items():
        for key, spec in inputs.items():
            cal = _threshold_input(model, node, key, spec)
            if base_qtype(assignment[cal.name]) == "int8":
                assignment[cal.name] = f"int8@{spec['method']}"
    return assignment


def _threshold_input(model: CalibratedModel, node: str, key: str, spec: dict) -> CalibrationNode:
    """The calibration input a threshold_config entry names; its min/max, if given, must be the range its method
    found (autoprec reads a range by method: a hand-edited min/max would be ignored, so it is refused)."""
    where = f"threshold_config.{node}.{key}"
    cal = model.find_input_calibration(node, int(key[5:])) if key[5:].isdigit() else None
    if cal is None:
        raise UserError(f"{where}: that node has no such calibrated input; see `autoprec sensitivity` for names")
    if spec["method"] not in cal.alternatives:
        raise UserError(
            f"{where}: this calibrated model has no '{spec['method']}' range there; "
            "evaluate the config on the calibrated model its search ran on"
        )
    low, high = cal.alternatives[spec["method"]]
    if not np.allclose([spec.get("min", low), spec.get("max", high)], [low, high], rtol=1e-6, atol=0.0):
        raise UserError(
            f"{where}: min/max must be the '{spec['method']}' range ({float(low):.8g}, {float(high):.8g}); "
            "autoprec reads ranges by method, so drop min/max or give those"
        )
    return cal


def _check_types(config: dict) -> None:
    """Every section and entry has the shape of the HMCT schema (a UserError naming the first that has not)."""
    for key in ("model_config", "node_config", "subgraph_config"):
        if not isinstance(config.get(key, {}), dict):
            raise UserError(f"quant_config {key} must be an object ({{...}}), not {type(config[key]).__name__}")
    for node, spec in config.get("node_config", {}).items():
        if not isinstance(spec, dict):
            raise UserError(f'node_config.{node} must be an object like {{"qtype": "int16"}}, not {spec!r}')
    if not isinstance(config.get("threshold_config", {}), dict):
        raise UserError("quant_config threshold_config must be an object ({...}) of node -> inputN -> range")
    for node, inputs in config.get("threshold_config", {}).items():
        for key, spec in inputs.items() if isinstance(inputs, dict) else [("", inputs)]:
            if not (isinstance(spec, dict) and isinstance(spec.get("method"), str)) or any(
                isinstance(spec.get(k, 0.0), bool) or not isinstance(spec.get(k, 0.0), int | float)
                for k in ("min", "max")
            ):
                raise UserError(
                    f'threshold_config.{node}.{key} must be an object like {{"method": "kl", "min": -1.5, "max": 2.25}}'
                    f", not {spec!r}"
                )
    for name, spec in config.get("subgraph_config", {}).items():
        if not isinstance(spec, dict):
            raise UserError(f"subgraph_config.{name} must be an object with inputs, outputs and qtype")
        for key in ("inputs", "outputs"):
            value = spec.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise UserError(f"subgraph_config.{name}.{key} must be a list of node names, not {value!r}")


def _check_qtype(qtype: str, where: str) -> None:
    if not isinstance(qtype, str) or qtype not in ASSIGNABLE:
        raise UserError(f"{where}: unknown qtype '{qtype}'; use one of {', '.join(ASSIGNABLE)}")


def qtype_targets(model: CalibratedModel, profile: HardwareProfile, node: str, qtype: str) -> list[CalibrationNode]:
    """The calibration inputs `qtype` on a node sets, as HMCT reads it: its feature inputs that the profile
    allows `qtype` on (`HardwareProfile.allowed`)."""
    features = [c for c in model.input_calibrations(node) if c.tensor_type == FEATURE]
    return [c for c in features if qtype in profile.allowed(model, c)]


def _set_node(
    model: CalibratedModel, profile: HardwareProfile, assignment: dict, node: str, qtype: str, explicit: bool = False
) -> None:
    """Set the feature inputs of `node` that `qtype` applies to; `explicit` (node_config names the node): a node
    with feature inputs none of which the profile allows `qtype` on is refused, not skipped."""
    chosen = qtype_targets(model, profile, node, qtype)
    if qtype == EC and not chosen:
        raise UserError(f"node_config.{node}: no input of this node takes error compensation under '{profile.name}'")
    features = [c for c in model.input_calibrations(node) if c.tensor_type == FEATURE]
    if explicit and features and not chosen:
        raise UserError(f"node_config.{node}: profile '{profile.name}' allows {qtype} on none of its inputs")
    for cal in chosen:
        assignment[cal.name] = qtype


def _set_input(
    model: CalibratedModel, profile: HardwareProfile, assignment: dict, name: str, qtype: str, where: str
) -> None:
    allowed = profile.allowed(model, model.calibration[name])
    if qtype == EC and EC not in allowed:
        raise UserError(f"{where}: error compensation applies only to forced-int8 inputs of profile '{profile.name}'")
    if qtype not in allowed:
        raise UserError(f"{where}: profile '{profile.name}' does not allow {qtype} here; use {', '.join(allowed)}")
    assignment[name] = qtype


def subgraph_nodes(model: CalibratedModel, inputs: list[str], outputs: list[str]) -> list[str]:
    """Nodes on a path from any of `inputs` to any of `outputs` (both ends included), in graph order."""
    for name in [*inputs, *outputs]:
        if name not in model.nodes:
            raise UserError(f"subgraph names unknown node '{name}'")
    downstream = _reach(model, inputs, forward=True)
    upstream = _reach(model, outputs, forward=False)
    inside = downstream & upstream
    if not inside or not set(outputs) <= inside:
        raise UserError(f"subgraph {inputs} -> {outputs} is not connected: no path from its inputs to its outputs")
    return [n.name for n in model.model.graph.node if n.name in inside]


def _reach(model: CalibratedModel, start: list[str], forward: bool) -> set[str]:
    seen, queue = set(start), deque(start)
    while queue:
        node = model.nodes[queue.popleft()]
        if forward:
            nxt = [c.name for out in node.output for c in model.consumers.get(out, [])]
        else:
            nxt = [model.producers[i].name for i in node.input if i in model.producers]
        for name in nxt:
            if name not in seen:
                seen.add(name)
                queue.append(name)
    return seen


def parse_subgraph(spec: str) -> tuple[str, dict]:
    """`name:in1,in2:out1` (HMCT subgraph_config written on one line) -> (name, {inputs, outputs, qtype})."""
    parts = spec.split(":")
    if len(parts) != 3 or not all(parts):
        raise UserError(f"--subgraph '{spec}': write it as name:input_node[,input_node...]:output_node[,...]")
    name, inputs, outputs = parts
    return name, {"inputs": inputs.split(","), "outputs": outputs.split(","), "qtype": "int16"}
