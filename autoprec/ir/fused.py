"""Activations a quantizer folded into QuantizeLinear, put back into the reconstructed float graph.

onnxruntime's `quantize_static` with asymmetric activations removes a Relu (or Clip) after Conv/MatMul/Add...
when the Q that follows clips to the same range: the QDQ model still computes it, but the float graph
autoprec strips out of it lacks the activation, so its float reference is wrong. The trace it leaves: a Q
whose range starts exactly at 0 (zero point at the type's minimum) on the sole use of an output of an op
that produces negative values. There a Relu is restored; a folded Clip(0, 6) is restored as Relu (values
above 6 differ), so `--float-model ORIGINAL.onnx` remains the exact reference.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from autoprec.ir.records import FEATURE, CalibrationNode, graph_maps

SIGNED_OUTPUT_OPS = frozenset(
    {"Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Sub", "Mul", "BatchNormalization", "LayerNormalization",
     "InstanceNormalization"}
)  # fmt: skip


def restore_folded_relus(model: onnx.ModelProto, calibration: dict[str, CalibrationNode]) -> list[str]:
    """Insert a Relu before every calibration node that shows a folded activation; returns the tensors fixed."""
    graph = model.graph
    producers, uses = graph_maps(graph)
    outputs = {o.name for o in graph.output}
    restored = []
    for cal in calibration.values():
        producer = producers.get(cal.tensor)
        starts_at_zero = not cal.symmetric and np.all(np.asarray(cal.rmin) == 0.0)
        if cal.tensor_type != FEATURE or not starts_at_zero or producer is None or cal.tensor in outputs:
            continue
        sole_use = {(n.name, i) for n, i in uses.get(cal.tensor, [])} == set(cal.consumers)
        if producer.op_type not in SIGNED_OUTPUT_OPS or producer.domain not in ("", "ai.onnx") or not sole_use:
            continue
        relu_out = f"{cal.tensor}/restored_relu"
        relu = helper.make_node("Relu", [cal.tensor], [relu_out], name=f"{producer.name}/restored_Relu")
        for node, i in uses[cal.tensor]:
            node.input[i] = relu_out
        position = next(k for k, n in enumerate(graph.node) if n is producer)
        graph.node.insert(position + 1, relu)
        restored.append(cal.tensor)
        cal.tensor = relu_out
    return restored
