"""The float16 qtype: a tensor rounded to float16 and back, saturating at +-65504 as HMCT's kernels do.

Exported as `Clip(+-65504) -> Cast(float16) -> Cast(float)` in front of the inputs the calibration node
feeds (output `<node>/dequantized`, like a Q/DQ pair). onnxruntime's Cast rounds to nearest even,
subnormals included, exactly as numpy's `astype(np.float16)` (checked on every float32 bit pattern
class in tests/test_float_qtypes.py), so `float16_round` (the simulator's weights) equals the exported
graph bit for bit. The Clip is there because a bare Cast gives inf beyond 65504; a chip saturates.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FLOAT16_MAX = 65504.0
SUFFIXES = ("/float16/Clip", "/float16/Cast", "/float16/CastBack")


def float16_round(x: np.ndarray) -> np.ndarray:
    """`x` saturated to +-65504, rounded to float16 (nearest even) and back to float32."""
    return np.clip(np.asarray(x, dtype=np.float32), -FLOAT16_MAX, FLOAT16_MAX).astype(np.float16).astype(np.float32)


def float16_nodes(name: str, tensor: str, graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Clip -> Cast(float16) -> Cast(float) of `tensor`, output `<name>/dequantized`."""
    low, high = f"{name}/float16/min", f"{name}/float16/max"
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(-FLOAT16_MAX, dtype=np.float32), low),
            numpy_helper.from_array(np.array(FLOAT16_MAX, dtype=np.float32), high),
        ]
    )
    clipped, half = f"{name}/float16/clipped", f"{name}/float16/half"
    return [
        helper.make_node("Clip", [tensor, low, high], [clipped], name=name + SUFFIXES[0]),
        helper.make_node("Cast", [clipped], [half], name=name + SUFFIXES[1], to=TensorProto.FLOAT16),
        helper.make_node("Cast", [half], [f"{name}/dequantized"], name=name + SUFFIXES[2], to=TensorProto.FLOAT),
    ]


def strip_float16(graph: onnx.GraphProto) -> dict[str, tuple[str, list[tuple[str, int]]]]:
    """Remove every float16 round trip (optional Clip, Cast to float16, Cast to float) from `graph` in place.

    Returns calibration node name -> (the tensor it rounds, the (node, input index) pairs it fed)."""
    producers = {out: n for n in graph.node for out in n.output}
    found, removed = {}, set()
    for back in graph.node:
        half = producers.get(back.input[0]) if back.op_type == "Cast" and back.input else None
        if half is None or _cast_to(back) != TensorProto.FLOAT or half.op_type != "Cast":
            continue
        if _cast_to(half) != TensorProto.FLOAT16:
            continue
        chain, tensor = [back, half], half.input[0]
        clip = producers.get(tensor)
        if clip is not None and clip.op_type == "Clip":
            chain.append(clip)
            tensor = clip.input[0]
        uses = [(n, i) for n in graph.node for i, name in enumerate(n.input) if name == back.output[0]]
        if not uses or any(o.name == back.output[0] for o in graph.output):
            continue
        for node, i in uses:
            node.input[i] = tensor
        removed.update(id(n) for n in chain)
        name = back.name.removesuffix(SUFFIXES[2]) if back.name.endswith(SUFFIXES[2]) else back.output[0]
        found[name] = (tensor, [(n.name, i) for n, i in uses])
    kept = [n for n in graph.node if id(n) not in removed]
    del graph.node[:]
    graph.node.extend(kept)
    return found


def _cast_to(node: onnx.NodeProto) -> int | None:
    return next((a.i for a in node.attribute if a.name == "to"), None)
