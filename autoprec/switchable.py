"""One ONNX graph whose precision is chosen per run by feeds, so no candidate rebuilds a session.

Feature calibration node c becomes  Where(c/on, DQ16(Q16(Clip(x, c/lo, c/hi), c/scale, c/zp)), x).
Saturating to [lo, hi] first and then quantizing on an int16 grid with the node's scale gives the
same values as an int8 (or int16) Q/DQ pair (rounding and the zero point commute: round(x/s) + zp),
so one graph simulates int8, int16 and float per node. A weight calibration node becomes an
overridable input fed with the weight already fake-quantized in numpy.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from autoprec.ir import FEATURE, CalibratedModel, CalibrationNode


def build_switchable(model: CalibratedModel) -> onnx.ModelProto:
    """The calibrated model's float graph with a switchable fake-quant point per calibration node."""
    switchable = onnx.ModelProto()
    switchable.CopyFrom(model.model)
    graph = switchable.graph
    inits = {i.name: i for i in graph.initializer}
    rewired: dict[tuple[str, int], str] = {}
    inserted: dict[str, list[onnx.NodeProto]] = {}
    for cal in model.calibration.values():
        if cal.tensor_type == FEATURE:
            out = f"{cal.name}/switched"
            inserted[cal.name] = _feature_switch(cal, out, graph)
        else:
            out = f"{cal.name}/weight"
            default = numpy_helper.to_array(inits[cal.tensor])
            _add_input(graph, numpy_helper.from_array(default.astype(np.float32), out))
        for consumer in cal.consumers:
            rewired[consumer] = out
    nodes = []
    for node in graph.node:
        for i, name in enumerate(node.input):
            cal_name = rewired.get((node.name, i))
            if cal_name is None:
                continue
            owner = cal_name.rsplit("/", 1)[0]
            nodes.extend(inserted.pop(owner, []))
            node.input[i] = cal_name
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return switchable


def _feature_switch(cal: CalibrationNode, out: str, graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    name = cal.name
    defaults = {
        "lo": np.float32(-np.inf),
        "hi": np.float32(np.inf),
        "scale": np.float32(1.0),
        "zp": np.int16(0),
        "on": np.bool_(False),
    }
    for suffix, value in defaults.items():
        _add_input(graph, numpy_helper.from_array(np.asarray(value), f"{name}/{suffix}"))
    return [
        helper.make_node("Clip", [cal.tensor, f"{name}/lo", f"{name}/hi"], [f"{name}/clipped"], name=f"{name}/Clip"),
        helper.make_node(
            "QuantizeLinear", [f"{name}/clipped", f"{name}/scale", f"{name}/zp"], [f"{name}/q"], name=f"{name}/Q"
        ),
        helper.make_node(
            "DequantizeLinear", [f"{name}/q", f"{name}/scale", f"{name}/zp"], [f"{name}/dq"], name=f"{name}/DQ"
        ),
        helper.make_node("Where", [f"{name}/on", f"{name}/dq", cal.tensor], [out], name=f"{name}/Where"),
    ]


def _add_input(graph: onnx.GraphProto, tensor: onnx.TensorProto) -> None:
    """An initializer that is also a graph input: a default value a feed may override."""
    graph.initializer.append(tensor)
    shape = list(tensor.dims)
    graph.input.append(helper.make_tensor_value_info(tensor.name, tensor.data_type, shape))


class FeedTable:
    """Feeds that put every calibration node at the qtype an assignment gives (cached per node and qtype)."""

    def __init__(self, model: CalibratedModel):
        self.model = model
        self._cache: dict[tuple[str, str], dict[str, np.ndarray]] = {}
        self._weights = {i.name: i for i in model.model.graph.initializer}

    def feeds(self, assignment: dict[str, str]) -> dict[str, np.ndarray]:
        feeds: dict[str, np.ndarray] = {}
        for name, cal in self.model.calibration.items():
            feeds.update(self._node_feeds(cal, assignment.get(name, cal.qtype)))
        return feeds

    def _node_feeds(self, cal: CalibrationNode, qtype: str) -> dict[str, np.ndarray]:
        key = (cal.name, qtype)
        if key not in self._cache:
            self._cache[key] = self._compute(cal, qtype)
        return self._cache[key]

    def _compute(self, cal: CalibrationNode, qtype: str) -> dict[str, np.ndarray]:
        if cal.tensor_type != FEATURE:
            weight = numpy_helper.to_array(self._weights[cal.tensor]).astype(np.float32)
            if qtype != "float32":
                weight = cal.quant_params(qtype).fake_quantize(weight)
            return {f"{cal.name}/weight": weight}
        if qtype == "float32":
            return {f"{cal.name}/on": np.asarray(False)}
        params = cal.quant_params(qtype)
        low, high = params.clip_range()
        zero_point = int(params.zero_point.reshape(-1)[0])
        grid_zero = zero_point - 32768 if params.zero_point.dtype == np.uint16 else 0
        return {
            f"{cal.name}/lo": np.asarray(low.reshape(-1)[0], dtype=np.float32),
            f"{cal.name}/hi": np.asarray(high.reshape(-1)[0], dtype=np.float32),
            f"{cal.name}/scale": np.asarray(params.scale.reshape(-1)[0], dtype=np.float32),
            f"{cal.name}/zp": np.asarray(grid_zero, dtype=np.int16),
            f"{cal.name}/on": np.asarray(True),
        }
