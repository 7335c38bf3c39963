"""The cost of a candidate on the chip: MACs (or elements) of the ops each raised calibration node feeds.

Normalized so that all-int16 (everything the profile allows) costs 1.0. Error compensation costs one
extra copy of the op. Shapes come from onnx shape inference with the inputs fixed to a real sample's
shapes (declared output shapes can be wrong; run-time input shapes are not).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import shape_inference

from autoprec.data import Sample
from autoprec.ir import CalibratedModel


def op_costs(model: CalibratedModel, sample: Sample) -> dict[str, float]:
    """Normal node name -> MACs (conv, matmul) or output elements (everything else)."""
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
        else:
            costs[node.name] = elements
    return costs


def reduction_size(node: onnx.NodeProto, weight: list[int]) -> int:
    """K of a MatMul (B is [..., K, N]; a 1-D B is [K]) or a Gemm (B is [K, N], or [N, K] with transB)."""
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return weight[1] if trans_b else weight[0]
    return weight[-2] if len(weight) > 1 else weight[0]


def calibration_costs(model: CalibratedModel, sample: Sample) -> dict[str, float]:
    """Calibration node -> cost of raising it (the ops it feeds)."""
    ops = op_costs(model, sample)
    return {name: sum(ops[node] for node, _ in cal.consumers) for name, cal in model.calibration.items()}


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
