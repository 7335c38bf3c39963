"""Error compensation ("ec"): int8 plus a second int8 term on the quantization residual.

Two int8 terms approximate one int16 term. In ONNX the op keeps its int8 Q/DQ, a copy
`<op>_split_low` (same attributes, same other inputs, no bias) runs on Q/DQ of the residual and an
Add `<op>_split_add` sums both under the op's original output name (`split_nodes`, `residual_nodes`);
`strip_ec` folds such a rewrite back into an "ec" calibration node on import. The simulator runs the
rewrite itself (bit-exact with the export).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import helper, numpy_helper

from autoprec.ir.hmct_attrs import GroupedQuantParams
from autoprec.ir.records import WEIGHT, CalibrationNode, QuantParams, graph_maps

if TYPE_CHECKING:
    from autoprec.ir.model import CalibratedModel

SPLIT_LOW = "_split_low"
_BIASED = {"Conv", "ConvTranspose", "Gemm"}  # input 2 is a bias: it stays in the main branch only


def residual_params(model: CalibratedModel, name: str) -> QuantParams:
    """Symmetric int8 parameters of the residual an "ec" node adds (x - DQ8(Q8(x))).

    Weights: per channel (the node's own axis), threshold max|r_c| over the channel.
    Features: threshold = half the int8 scale (the largest in-range rounding error)."""
    cal = model.calibration[name]
    main = cal.quant_params("int8")
    if cal.tensor_type == WEIGHT:
        residual = np.abs(weight_residual(model, name)).astype(np.float64)
        if cal.axis is None:
            threshold = np.float64(residual.max()) if residual.size else np.float64(0.0)
        else:
            axis = cal.axis % residual.ndim
            threshold = residual.max(axis=tuple(d for d in range(residual.ndim) if d != axis))
    else:
        threshold = main.scale.astype(np.float64) / 2
    finest = main.scale.astype(np.float64) / 2 / 127  # a residual that is all zero: any scale represents it
    scale = np.where(threshold > 0, np.asarray(threshold, dtype=np.float64) / 127, finest).astype(np.float32)
    return QuantParams(scale, np.zeros(scale.shape, dtype=np.int8), main.axis)


def weight_residual(model: CalibratedModel, name: str) -> np.ndarray:
    """r = W - DQ8(Q8(W)) of a weight calibration node, in float32 (what the `_split_low` op multiplies)."""
    cal = model.calibration[name]
    weight = model.weight_values(cal)
    return (weight - cal.quant_params("int8").fake_quantize(weight)).astype(np.float32)


def residual_nodes(model: CalibratedModel, cal: CalibrationNode, graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Q/DQ of the int8 residual of an "ec" node (output `<cal>/residual/dequantized`)."""
    prefix, nodes = f"{cal.name}/residual", []
    source = f"{prefix}/float"
    if cal.tensor_type == WEIGHT:
        graph.initializer.append(numpy_helper.from_array(weight_residual(model, cal.name), source))
    else:
        nodes.append(helper.make_node("Sub", [cal.tensor, f"{cal.name}/dequantized"], [source], name=f"{prefix}/Sub"))
    return nodes + qdq_nodes(prefix, source, residual_params(model, cal.name), graph)


def split_nodes(main: onnx.NodeProto, split: dict[int, CalibrationNode]) -> list[onnx.NodeProto]:
    """`main`, its `_split_low` copy on the residual inputs in `split`, and the Add of both outputs."""
    output = main.output[0]
    low = onnx.NodeProto()
    low.CopyFrom(main)
    low.name = main.name + SPLIT_LOW
    for i, cal in split.items():
        low.input[i] = f"{cal.name}/residual/dequantized"
    if main.op_type in _BIASED and len(low.input) > 2:
        del low.input[2:]
    del low.output[1:]
    low.output[0] = f"{output}/ec_low"
    main.output[0] = f"{output}/ec_main"
    add = helper.make_node("Add", [main.output[0], low.output[0]], [output], name=main.name + "_split_add")
    return [main, low, add]


def strip_ec(model: onnx.ModelProto) -> tuple[onnx.ModelProto, set[tuple[str, int]]]:
    """Fold every error-compensation rewrite (`to_onnx` of an "ec" node) back into its main op.

    Returns a copy of `model` without the `_split_low` ops, their Adds and residual Q/DQ (and Sub), and
    the (op, input index) pairs that were compensated. Anything not shaped like the rewrite is kept."""
    stripped = onnx.ModelProto()
    stripped.CopyFrom(model)
    graph = stripped.graph
    nodes = {n.name: n for n in graph.node}
    producers, uses = graph_maps(graph)
    consumers = {tensor: [node for node, _ in pairs] for tensor, pairs in uses.items()}
    graph_outputs = {o.name for o in graph.output}
    removed: set[int] = set()
    compensated: set[tuple[str, int]] = set()
    for low in graph.node:
        main = nodes.get(low.name.removesuffix(SPLIT_LOW)) if low.name.endswith(SPLIT_LOW) else None
        if main is None or main.op_type != low.op_type or not main.output or not low.output:
            continue
        outs = [main.output[0], low.output[0]]
        add = consumers.get(low.output[0], [])
        if (
            len(add) != 1
            or add[0].op_type != "Add"
            or sorted(add[0].input) != sorted(outs)
            or consumers.get(main.output[0], []) != add
            or graph_outputs & set(outs)
        ):
            continue
        add = add[0]
        changed = [i for i in range(min(len(low.input), len(main.input))) if low.input[i] != main.input[i]]
        dq = producers.get(low.input[changed[0]]) if len(changed) == 1 else None
        q = producers.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        if q is None or q.op_type != "QuantizeLinear":
            continue
        chain = [low, add, dq, q]
        sub = producers.get(q.input[0])
        if sub is not None and sub.op_type == "Sub":
            chain.append(sub)
        removed.update(id(n) for n in chain)
        main.output[0] = add.output[0]
        compensated.add((main.name, changed[0]))
    if removed:
        kept = [n for n in graph.node if id(n) not in removed]
        del graph.node[:]
        graph.node.extend(kept)
    return stripped, compensated


def qdq_nodes(name: str, tensor: str, params: QuantParams, graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    if isinstance(params, GroupedQuantParams) and (grouped := params.grouped_qdq_nodes(name, tensor, graph)):
        return grouped  # an HMCT grouped ConvTranspose weight: one scale per true output channel
    scale, zero_point = f"{name}/scale", f"{name}/zero_point"
    graph.initializer.extend(
        [numpy_helper.from_array(params.scale, scale), numpy_helper.from_array(params.zero_point, zero_point)]
    )
    axis = {} if params.axis is None else {"axis": params.axis}
    quantized, dequantized = f"{name}/quantized", f"{name}/dequantized"
    return [
        helper.make_node(
            "QuantizeLinear", [tensor, scale, zero_point], [quantized], name=f"{name}/QuantizeLinear", **axis
        ),
        helper.make_node(
            "DequantizeLinear",
            [quantized, scale, zero_point],
            [dequantized],
            name=f"{name}/DequantizeLinear",
            **axis,
        ),
    ]
