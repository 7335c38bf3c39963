"""HMCT export: an assignment -> a calibrated model with HzCalibration nodes, as HMCT compiles it.

From an HMCT model (`edit_hmct`): its own graph with each calibration node's `qtype` (or legacy
`bits`) set to the assignment's; a node whose qtype changes gets the scales (and zero point) the
search simulated (recomputed from its thresholds as HMCT does); every other attribute and node is
kept as it was. From any other calibrated model (`build_hmct`, e.g. autoprec's QDQ model): one
HzCalibration node per calibration node (`<tensor>_HzCalibration`, output `<tensor>_calibrated`)
with its thresholds and the exact scales autoprec used (`constant = 2`: the scales are the truth).
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import onnx
from onnx import helper

from autoprec.errors import UserError
from autoprec.ir.hmct_attrs import CASTS, HZ_DOMAIN, HZ_OP, SEARCHABLE, is_hz, qtype_of, quant_attrs_bits
from autoprec.ir.hmct_import import CALIBRATION_METHODS
from autoprec.ir.model import CalibratedModel
from autoprec.ir.qdq_import import name_nodes
from autoprec.ir.records import WEIGHT, CalibrationNode


def to_hmct(original: onnx.ModelProto, model: CalibratedModel, assignment: dict[str, str]) -> onnx.ModelProto:
    """The HMCT calibrated model of `assignment` (`original`: the file `model` was loaded from)."""
    qtypes = {**model.assignment(), **assignment}
    for name, qtype in qtypes.items():
        if qtype not in (*SEARCHABLE, *CASTS, "float32"):
            raise UserError(f"{name}: qtype '{qtype}' has no HzCalibration form autoprec writes (int8, int16, float*)")
    if any(is_hz(n) for n in original.graph.node):
        return edit_hmct(original, model, qtypes)
    return build_hmct(model, qtypes)


def edit_hmct(original: onnx.ModelProto, model: CalibratedModel, qtypes: dict[str, str]) -> onnx.ModelProto:
    """`original` with its calibration nodes' qtypes (and, where they change, scales) set from `qtypes`."""
    edited = onnx.ModelProto()
    edited.CopyFrom(original)
    name_nodes(edited.graph)  # as on import: unnamed nodes get the names the calibration nodes carry
    for node in edited.graph.node:
        cal = model.calibration.get(node.name) if is_hz(node) else None
        if cal is None or qtypes[cal.name] == qtype_of(cal.source or {}):
            continue
        qtype = qtypes[cal.name]
        if "qtype" not in (cal.source or {}) and qtype in SEARCHABLE:
            _set(node, "bits", int(qtype[3:]))
        else:
            _set(node, "qtype", qtype)
        if qtype in SEARCHABLE:
            params = cal.quant_params(qtype)
            _set(node, "scales", [float(s) for s in np.ravel(params.scale)])
            if "zero_point" in (cal.source or {}) or not cal.symmetric:
                _set(node, "zero_point", [int(z) for z in np.ravel(params.zero_point)])
    return edited


def build_hmct(model: CalibratedModel, qtypes: dict[str, str]) -> onnx.ModelProto:
    """`model`'s float graph with one HzCalibration node per calibration node, at `qtypes`."""
    built = onnx.ModelProto()
    built.CopyFrom(model.model)
    graph = built.graph
    per_tensor = Counter(cal.tensor for cal in model.calibration.values())
    seen: Counter = Counter()
    order = {n.name: k for k, n in enumerate(graph.node)}
    by_name = {n.name: n for n in graph.node}
    before: dict[int, list[onnx.NodeProto]] = defaultdict(list)  # graph position -> nodes to insert there
    for cal in model.calibration.values():
        seen[cal.tensor] += 1
        suffix = f"_{seen[cal.tensor]}" if per_tensor[cal.tensor] > 1 else ""
        output = f"{cal.tensor}_calibrated{suffix}"
        attrs = _attributes(model, cal, qtypes[cal.name])
        node = helper.make_node(HZ_OP, [cal.tensor], [output], name=f"{cal.tensor}_HzCalibration{suffix}",
                                domain=HZ_DOMAIN, **attrs)  # fmt: skip
        for consumer, index in cal.consumers:
            by_name[consumer].input[index] = output
        before[min(order[c] for c, _ in cal.consumers)].append(node)
    nodes = [new for k, node in enumerate(graph.node) for new in (*before[k], node)]
    del graph.node[:]
    graph.node.extend(nodes)
    built.opset_import.append(helper.make_opsetid(HZ_DOMAIN, 1))
    return built


def _attributes(model: CalibratedModel, cal: CalibrationNode, qtype: str) -> dict:
    """HzCalibration attributes of a calibration node (thresholds, the exact scales used at `qtype`)."""
    attrs: dict = {"qtype": qtype, "constant": 2, "switch": "ON"}
    if cal.symmetric:
        attrs["thresholds"] = np.ravel(np.maximum(np.abs(cal.rmin), np.abs(cal.rmax))).tolist()
    elif cal.axis is None:
        attrs["thresholds"] = [float(cal.rmin), float(cal.rmax)]
    else:
        raise UserError(f"{cal.name}: per-channel asymmetric thresholds have no known HzCalibration form")
    params = cal.quant_params(qtype if qtype in SEARCHABLE else "int8")
    attrs["scales"] = [float(s) for s in np.ravel(params.scale)]
    if not cal.symmetric:  # autoprec's unsigned grid, shifted onto HMCT's signed range (the same values)
        offset = 0 if np.dtype(params.zero_point.dtype).kind == "i" else 2 ** (8 * params.zero_point.itemsize - 1)
        attrs["zero_point"] = [int(z) - offset for z in np.ravel(params.zero_point)]
    if cal.axis is not None:
        attrs["axis"] = int(cal.axis)
    if cal.tensor_type == WEIGHT:
        group = next((a.i for a in model.nodes[cal.consumers[0][0]].attribute if a.name == "group"), 1)
        if group > 1:
            attrs["group"] = int(group)
    method = {v: k for k, v in CALIBRATION_METHODS.items()}.get(model.settings.get("method"))
    if cal.tensor_type != WEIGHT and method is not None:  # how the thresholds were found, in HMCT's codes
        attrs["cali_attrs"] = [method]
        if model.settings["method"] == "percentile":
            attrs["percentiles"] = [model.settings.get("percentile", 99.999) / 100]
    attrs["quant_attrs"] = quant_attrs_bits(cal.symmetric, cal.axis is not None, cal.tensor_type == WEIGHT)
    return attrs


def _set(node: onnx.NodeProto, name: str, value: object) -> None:
    """Set one attribute in place (same position if it exists)."""
    new = helper.make_attribute(name, value)
    for attr in node.attribute:
        if attr.name == name:
            attr.CopyFrom(new)
            return
    node.attribute.append(new)
