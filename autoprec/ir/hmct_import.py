"""HMCT import: a calibrated model whose quantization points are `HzCalibration` nodes -> `CalibratedModel`.

Every int8/int16 HzCalibration node with scales becomes a `CalibrationNode` named like the node, with
its thresholds (per tensor or per channel along `axis`), zero point, tensor type and its original
attributes in `source` (so its stored scales are used at its own qtype and export writes it back).
The float graph is the graph with those nodes passing through. Nodes the search does not change
stay in the graph as what their kernel computes, in every evaluation and in the float reference:
`switch == "OFF"`, `float32` and nodes without scales pass data through; `float16`/`bfloat16` are a
(saturating) cast and back. Anything else is a one-line `UserError` (see `hmct_attrs.node_kind`).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx
from onnx import helper, numpy_helper, version_converter

from autoprec.errors import UserError
from autoprec.ir.hmct_attrs import (
    CASTS,
    FLOAT16_MAX,
    HZ_DOMAIN,
    is_hz,
    is_symmetric,
    node_kind,
    qtype_of,
    ranges,
    read_attributes,
    tensor_type,
)
from autoprec.ir.model import CalibratedModel
from autoprec.ir.qdq_import import name_nodes
from autoprec.ir.records import FEATURE, WEIGHT, CalibrationNode

TARGET_OPSET = 21  # int16 QuantizeLinear/DequantizeLinear
CALIBRATION_METHODS = {1: "max", 2: "kl", 4: "percentile"}  # HMCT's cali_attrs codes autoprec names the same


def is_hmct(model: onnx.ModelProto) -> bool:
    """True if the model holds HMCT calibration nodes."""
    return any(is_hz(n) for n in model.graph.node)


def from_hmct(model: onnx.ModelProto, source: str = "model") -> CalibratedModel:
    """The calibrated model an HMCT calibrated model describes (`source` names it in errors)."""
    stripped = onnx.ModelProto()
    stripped.CopyFrom(model)
    graph = stripped.graph
    name_nodes(graph)
    _constants_to_initializers(graph)
    hz = [(n, read_attributes(n)) for n in graph.node if is_hz(n)]
    kinds = {n.name: node_kind(n.name, attrs) for n, attrs in hz}
    if len(kinds) != len(hz):
        raise UserError(f"{source}: two HzCalibration nodes share a name; give every node a unique name")
    normal = {n.name for n in graph.node if not is_hz(n)}
    rewiring = _Rewiring(graph)
    for node, _ in hz:  # fixed nodes first, so a searchable node feeding one sees its rendered form
        if kinds[node.name] != "search":
            rewiring.render_fixed(node, kinds[node.name])
    inits = {i.name for i in graph.initializer}
    calibration: dict[str, CalibrationNode] = {}
    for node, attrs in hz:
        if kinds[node.name] != "search":
            continue
        uses = rewiring.bypass(node)
        if not uses:
            continue  # nothing reads it
        if any(is_hz(user) for user, _ in uses):
            raise UserError(f"{source}: {node.name} feeds another int8/int16 HzCalibration node (unsupported chain)")
        rmin, rmax, axis = ranges(node.name, attrs)
        tensor = node.input[0]
        if tensor_type(attrs, tensor in inits) == WEIGHT and tensor not in inits:
            raise UserError(f"{source}: {node.name} is a weight node on a computed tensor '{tensor}' (unsupported)")
        # read by a model output's Identity or a fixed node's cast: no node_config entry addresses it
        addressable = all(user.name in normal for user, _ in uses)
        calibration[node.name] = CalibrationNode(
            name=node.name,
            tensor=tensor,
            consumers=[(user.name, i) for user, i in uses],
            tensor_type=tensor_type(attrs, tensor in inits),
            qtype=qtype_of(attrs),
            rmin=rmin,
            rmax=rmax,
            symmetric=is_symmetric(attrs),
            axis=axis,
            folded=not addressable,  # so the search never raises it
            source=attrs,
        )
    rewiring.apply()
    _drop_domain(stripped)
    if not calibration:
        raise UserError(f"{source}: no int8/int16 HzCalibration nodes with scales; nothing for autoprec to search")
    return CalibratedModel(_to_opset(stripped, source), calibration, calibration_settings(calibration))


def calibration_settings(calibration: dict[str, CalibrationNode]) -> dict:
    """How HMCT calibrated the activations (from `cali_attrs`), when every feature node agrees; else no method,
    so an emitted quant_config leaves HMCT's own activation settings in charge."""
    features = [c for c in calibration.values() if c.tensor_type == FEATURE]
    codes = {tuple((c.source or {}).get("cali_attrs", [])) for c in features}
    settings: dict = {"format": "hmct"}
    method = CALIBRATION_METHODS.get(codes.pop()[0]) if len(codes) == 1 and len(next(iter(codes))) == 1 else None
    if method is None:
        return settings
    settings.update(method=method, per_channel=any(c.axis is not None for c in features),
                    asymmetric=not all(c.symmetric for c in features))  # fmt: skip
    percentiles = {tuple((c.source or {}).get("percentiles", [])) for c in features}
    if method == "percentile" and len(percentiles) == 1 and len(next(iter(percentiles))) == 1:
        value = next(iter(percentiles))[0]
        settings["percentile"] = value * 100 if value <= 1 else value
    elif method == "percentile":
        del settings["method"]
    return settings


class _Rewiring:
    """Takes HzCalibration nodes out of a graph: readers are pointed past them (one use map, one rebuild)."""

    def __init__(self, graph: onnx.GraphProto):
        self.graph = graph
        self.outputs = {o.name for o in graph.output}
        self.uses: dict[str, list[tuple[onnx.NodeProto, int]]] = defaultdict(list)
        for node in graph.node:
            for i, name in enumerate(node.input):
                self.uses[name].append((node, i))
        self.replacements: dict[str, list[onnx.NodeProto]] = {}  # by node name (unique: name_nodes)

    def bypass(self, node: onnx.NodeProto) -> list[tuple[onnx.NodeProto, int]]:
        """Point every reader of the node's output at its input (a graph output: an Identity reader)."""
        source, output = node.input[0], node.output[0]
        self.uses[source] = [(user, i) for user, i in self.uses[source] if user is not node]
        uses = self.uses.pop(output, [])
        if output in self.outputs:
            identity = helper.make_node("Identity", [source], [output], name=node.name + "/output")
            self.replacements[node.name] = [identity]
            uses.append((identity, 0))
        for user, i in uses:
            user.input[i] = source
        self.uses[source].extend(uses)
        return uses

    def render_fixed(self, node: onnx.NodeProto, kind: str) -> None:
        """Replace a node the search does not change by what its kernel computes (nothing, or a cast and back)."""
        if kind == "identity":
            self.bypass(node)
            return
        source, output, qtype = node.input[0], node.output[0], qtype_of(read_attributes(node))
        low = f"{node.name}/{qtype}"
        new = [helper.make_node("Cast", [source], [low], name=low + "/Cast", to=CASTS[qtype]),
               helper.make_node("Cast", [low], [output], name=low + "/Back", to=onnx.TensorProto.FLOAT)]  # fmt: skip
        if qtype == "float16":  # HMCT saturates; a plain cast would give inf
            new[0].input[0] = low + "/saturated"
            bounds = [numpy_helper.from_array(np.array(v, np.float32), f"{low}/{k}")
                      for k, v in (("min", -FLOAT16_MAX), ("max", FLOAT16_MAX))]  # fmt: skip
            self.graph.initializer.extend(bounds)
            new.insert(0, helper.make_node("Clip", [source, *(b.name for b in bounds)], [new[0].input[0]],
                                           name=low + "/Clip"))  # fmt: skip
        self.uses[source] = [(new[0], 0) if user is node else (user, i) for user, i in self.uses[source]]
        self.replacements[node.name] = new

    def apply(self) -> None:
        """Rebuild the node list: each HzCalibration node gone or replaced, everything else in place."""
        nodes = []
        for node in self.graph.node:
            if is_hz(node):
                nodes.extend(self.replacements.get(node.name, []))
            else:
                nodes.append(node)
        del self.graph.node[:]
        self.graph.node.extend(nodes)


def _constants_to_initializers(graph: onnx.GraphProto) -> None:
    """Constant nodes feeding a calibration node become initializers (weights are read from initializers)."""
    calibrated = {n.input[0] for n in graph.node if is_hz(n)}
    folded = set()
    for node in graph.node:
        value = next((a.t for a in node.attribute if a.name == "value"), None) if node.op_type == "Constant" else None
        if value is not None and node.output[0] in calibrated:
            graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(value), node.output[0]))
            folded.add(node.output[0])
    if folded:
        kept = [n for n in graph.node if n.op_type != "Constant" or n.output[0] not in folded]
        del graph.node[:]
        graph.node.extend(kept)


def _drop_domain(model: onnx.ModelProto) -> None:
    kept = [o for o in model.opset_import if o.domain != HZ_DOMAIN]
    del model.opset_import[:]
    model.opset_import.extend(kept)


def _to_opset(model: onnx.ModelProto, source: str) -> onnx.ModelProto:
    version = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), TARGET_OPSET)
    if version >= TARGET_OPSET:
        return model
    try:
        converted = version_converter.convert_version(model, TARGET_OPSET)
    except Exception as exc:  # the converter raises several types
        raise UserError(f"{source}: cannot convert to opset {TARGET_OPSET} for int16 Q/DQ ({exc})") from exc
    name_nodes(converted.graph)
    return converted
