"""The deployable QDQ model of an assignment: what `autoprec export` writes and `--runtime ort-default` runs.

Starts from `to_onnx` (float weights behind Q/DQ pairs) and stores every quantized weight the way
runtimes expect it: an int8/int16 initializer feeding a DequantizeLinear (quantized exactly as
QuantizeLinear does: round half to even, saturate), so the file is small and the values are the
ones searched. With `ms_domain`, Q/DQ nodes use onnxruntime's `com.microsoft` operators (int16 before
opset 21) and the default opset is lowered to the oldest version whose operators keep their inputs,
outputs and attributes (`onnx.checker` then checks the types).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import defs, numpy_helper

if TYPE_CHECKING:
    from autoprec.ir.model import CalibratedModel

MS_DOMAIN = "com.microsoft"
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
OLDEST_OPSET = 13  # per-axis Q/DQ and every op the calibrator emits exist from here


def deploy_onnx(
    cm: CalibratedModel, assignment: dict[str, str] | None = None, ms_domain: bool = False
) -> onnx.ModelProto:
    """The static QDQ model of `assignment` with quantized weights stored as integer initializers."""
    model = cm.to_onnx(assignment)
    fold_weight_quantization(model)
    if ms_domain:
        to_ms_domain(model)
    return model


def fold_weight_quantization(model: onnx.ModelProto) -> int:
    """Replace each QuantizeLinear of an initializer by its integer result; returns how many were folded."""
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    kept, folded = [], 0
    for node in graph.node:
        source = node.input[0] if node.input else ""
        if node.op_type != "QuantizeLinear" or source not in inits or len(node.input) < 3:
            kept.append(node)
            continue
        value = numpy_helper.to_array(inits[source]).astype(np.float32)
        scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        zero_point = numpy_helper.to_array(inits[node.input[2]])
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        graph.initializer.append(numpy_helper.from_array(_quantize(value, scale, zero_point, axis), node.output[0]))
        uses[source] -= 1
        folded += 1
    del graph.node[:]
    graph.node.extend(kept)
    unused = {name for name, count in uses.items() if count == 0}
    remaining = [i for i in graph.initializer if i.name not in unused]
    del graph.initializer[:]
    graph.initializer.extend(remaining)
    return folded


def _quantize(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int) -> np.ndarray:
    shape = [1] * x.ndim
    if scale.ndim:
        shape[axis % x.ndim] = -1
    info = np.iinfo(zero_point.dtype)
    q = np.round(x / scale.reshape(shape)) + zero_point.astype(np.float32).reshape(shape)
    return np.clip(q, info.min, info.max).astype(zero_point.dtype)


def to_ms_domain(model: onnx.ModelProto) -> int:
    """Move Q/DQ to `com.microsoft` and lower the default opset as far as the other ops allow; returns it."""
    for node in model.graph.node:
        if node.op_type in QDQ_OPS:
            node.domain = MS_DOMAIN
    ops = {n.op_type for n in model.graph.node if n.domain in ("", "ai.onnx")}
    current = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    version = current
    while version > OLDEST_OPSET and all(_signature(op, version - 1) == _signature(op, current) for op in ops):
        version -= 1
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = version
    if not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.add(domain=MS_DOMAIN, version=1)
    return version


def _signature(op: str, version: int) -> tuple | None:
    """What a model sees of an operator at an opset: its inputs, outputs and attributes (type lists that
    only grew, e.g. int4 in opset 21, do not change a model that does not use the new types)."""
    try:
        schema = defs.get_schema(op, version)
    except defs.SchemaError:
        return None
    return ([i.name for i in schema.inputs], [o.name for o in schema.outputs], sorted(schema.attributes))
