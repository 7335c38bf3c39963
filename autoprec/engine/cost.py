"""The cost of a candidate on the chip: a small model of its time, from op sizes and the profile's rates.

A MAC op (Conv, ConvTranspose, MatMul, Gemm; LSTM/GRU/RNN: their input and recurrent weights at every
step) costs MACs x mac[qtype of input 0] x mac[qtype of input 1]; any other op costs output elements x
the sum of element[qtype] over its calibrated inputs (bytes moved).
"ec" on an input costs an int8 copy of the op (rate 2 x int8). The search charges the extra time over
all-int8, normalized so that all-int16 (everything the profile allows) costs 1.0 (`ChipCost.extra`).
Rates: `autoprec.hardware.CostModel` (README "Cost model"). Shapes come from onnx shape inference with
the inputs fixed to a real sample's shapes (declared output shapes can be wrong; run-time ones are not).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import shape_inference

from autoprec.data import Sample
from autoprec.hardware import CostModel
from autoprec.ir import EC, CalibratedModel, base_qtype

MAC_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm", "LSTM", "GRU", "RNN"})
RECURRENT = ("LSTM", "GRU", "RNN")


def op_costs(model: CalibratedModel, sample: Sample) -> dict[str, float]:
    """Normal node name -> MACs (conv, matmul, recurrent cells) or output elements (everything else)."""
    shapes = _shapes(model.model, sample)
    costs = {}
    for node in model.model.graph.node:
        out = shapes.get(node.output[0]) if node.output else None
        elements = float(np.prod(out)) if out else 1.0
        weight = shapes.get(node.input[1]) if len(node.input) > 1 else None
        if node.op_type == "Conv" and weight:
            costs[node.name] = elements * float(np.prod(weight[1:]))
        elif node.op_type == "ConvTranspose" and weight:
            inp = shapes.get(node.input[0])
            costs[node.name] = (float(np.prod(inp)) if inp else elements) * float(np.prod(weight[1:]))
        elif node.op_type in ("MatMul", "Gemm") and weight:
            costs[node.name] = elements * float(reduction_size(node, weight))
        elif node.op_type in RECURRENT and weight and len(node.input) > 2 and node.input[0] in shapes:
            steps = float(np.prod(shapes[node.input[0]][:2]))  # sequence x batch, in either layout
            costs[node.name] = steps * float(np.prod(weight) + np.prod(shapes.get(node.input[2], [0])))
        else:
            costs[node.name] = elements
    return costs


def reduction_size(node: onnx.NodeProto, weight: list[int]) -> int:
    """K of a MatMul (B is [..., K, N]; a 1-D B is [K]) or a Gemm (B is [K, N], or [N, K] with transB)."""
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return weight[1] if trans_b else weight[0]
    return weight[-2] if len(weight) > 1 else weight[0]


class ChipCost:
    """The modelled time of any assignment of one model on one chip (op sizes measured once)."""

    def __init__(self, model: CalibratedModel, rates: CostModel, sample: Sample):
        sizes = op_costs(model, sample)
        self.mac = {**rates.mac, EC: 2 * rates.mac["int8"]}
        self.element = {**rates.element, EC: 2 * rates.element["int8"]}
        self.ops: list[tuple[float, bool, list[str | None]]] = []  # (size, MAC op?, calibration node per input)
        for node in model.model.graph.node:
            cals = {i: c.name for c in model.input_calibrations(node.name) for n, i in c.consumers if n == node.name}
            if cals:
                inputs = [cals.get(i) for i in range(len(node.input))]
                self.ops.append((sizes[node.name], node.op_type in MAC_OPS, inputs))
        self._int8 = self.time(dict.fromkeys(model.calibration, "int8"))

    def time(self, assignment: dict[str, str]) -> float:
        """Modelled time of the calibrated ops under `assignment` (uncalibrated ops cost the same always; a range
        choice such as "int8@kl" costs its format)."""
        total = 0.0
        for size, is_mac, inputs in self.ops:
            if is_mac:
                rate = 1.0
                for name in inputs[:2]:
                    rate *= self.mac[base_qtype(assignment[name])] if name else self.mac["int8"]
                total += size * rate
            else:
                total += size * sum(self.element[base_qtype(assignment[name])] for name in inputs if name)
        return total

    def extra(self, assignment: dict[str, str]) -> float:
        """Modelled time above all-int8 (0 for all-int8)."""
        return self.time(assignment) - self._int8


def mac_share_above_int8(model: CalibratedModel, sample: Sample, assignment: dict[str, str]) -> float:
    """Share of the model's MACs in MAC ops with any calibrated input above int8 ("int8@kl" is int8)."""
    sizes = op_costs(model, sample)
    macs = {n.name: sizes[n.name] for n in model.model.graph.node if n.op_type in MAC_OPS}
    raised = [n for n, q in assignment.items() if base_qtype(q) != "int8"]
    above = {op for n in raised for op, _ in model.calibration[n].consumers}
    return sum(v for op, v in macs.items() if op in above) / (sum(macs.values()) or 1.0)


def _shapes(model: onnx.ModelProto, sample: Sample) -> dict[str, list[int]]:
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for value in fixed.graph.input:
        if value.name in sample:
            dims = value.type.tensor_type.shape.dim
            for dim, size in zip(dims, sample[value.name].shape):
                dim.Clear()
                dim.dim_value = int(size)
    del fixed.graph.value_info[:]
    inferred = shape_inference.infer_shapes(fixed, data_prop=True)
    shapes = {}
    for value in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = [d.dim_value for d in dims]
    for init in inferred.graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes
