"""Hand-built HMCT calibrated models (HzCalibration nodes, built with onnx.helper from the public
description of the node) and their kernel equivalents: each HzCalibration replaced by a
QuantizeLinear/DequantizeLinear pair at its stored scales, a saturating Cast pair, or nothing.

The equivalent is written here from the node's attributes alone (no autoprec code), so comparing
autoprec's simulation of an imported model against an onnxruntime run of it is a real check.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(13)
INPUT = [1, 4, 8, 8]
FEATURE, WEIGHT_PC = 69905, 139537  # activation (0x11111), per-channel weight (0x22111)


def _hz(tensor: str, suffix: str = "", **attrs) -> onnx.NodeProto:
    return helper.make_node("HzCalibration", [tensor], [f"{tensor}_calibrated{suffix}"],
                            name=f"{tensor}_HzCalibration{suffix}", domain="horizon", **attrs)  # fmt: skip


def _sym(threshold: np.ndarray, bits: int) -> list[float]:
    return (np.asarray(threshold, np.float32) / np.float32(2 ** (bits - 1) - 1)).astype(np.float32).tolist()


def feature(tensor: str, threshold: float, qtype: str = "int8", **extra) -> onnx.NodeProto:
    bits = extra.get("bits") or (16 if qtype.endswith("16") else 8)
    attrs = {"qtype": qtype, "thresholds": [threshold], "scales": _sym([threshold], bits), "constant": 1,
             "switch": "ON", "quant_attrs": FEATURE, "cali_attrs": [1]}  # fmt: skip
    attrs.update(extra)
    return _hz(tensor, **{k: v for k, v in attrs.items() if v is not None})


def weight(tensor: str, values: np.ndarray, axis: int, qtype: str = "int8", group: int = 1) -> onnx.NodeProto:
    bits = 16 if qtype == "int16" else 8
    if group > 1:  # grouped ConvTranspose: one scale per true output channel (Cout/g per group)
        blocks = values.reshape(group, values.shape[0] // group, *values.shape[1:])
        threshold = np.abs(blocks).max(axis=(1, *range(3, blocks.ndim))).reshape(-1)
    else:
        threshold = np.abs(values).max(axis=tuple(d for d in range(values.ndim) if d != axis))
    return _hz(tensor, qtype=qtype, thresholds=threshold.tolist(), scales=_sym(threshold, bits), axis=axis,
               group=group, constant=1, switch="ON", quant_attrs=WEIGHT_PC)  # fmt: skip


def asymmetric(tensor: str, low: float, high: float) -> onnx.NodeProto:
    scale = np.float32((high - low) / 255)
    zero_point = int(127 - np.round(high / np.float64(scale)))
    return _hz(tensor, qtype="int8", thresholds=[low, high], scales=[float(scale)], zero_point=[zero_point],
               constant=1, switch="ON", quant_attrs=0x11121)  # fmt: skip


def build() -> onnx.ModelProto:
    """One graph with every attribute case: per tensor, per channel, asymmetric, int16, legacy `bits`,
    float16, bfloat16, float32, switch OFF, grouped ConvTranspose, a Constant weight, a node on a graph output."""
    w1 = RNG.normal(0, 0.3, (8, 4, 3, 3)).astype(np.float32)
    w2 = RNG.normal(0, 0.2, (8, 8, 1, 1)).astype(np.float32)
    wt = RNG.normal(0, 0.3, (8, 2, 3, 3)).astype(np.float32)  # ConvTranspose, group 2: Cin 8, Cout 4
    w3 = RNG.normal(0, 0.3, (4, 4, 1, 1)).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (w2, "w2"), (wt, "wt"))]
    nodes = [
        feature("x", 3.0),
        weight("w1", w1, 0),
        helper.make_node("Conv", ["x_calibrated", "w1_calibrated"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        asymmetric("r1", 0.0, 4.0),
        weight("w2", w2, 0, qtype="int16"),
        helper.make_node("Conv", ["r1_calibrated", "w2_calibrated"], ["c2"], name="conv2"),
        feature("c2", 2.5, qtype=None, bits=16),  # legacy: `bits` instead of `qtype`
        weight("wt", wt, 1, group=2),
        helper.make_node(
            "ConvTranspose", ["c2_calibrated", "wt_calibrated"], ["t1"], name="convt", group=2, pads=[1, 1, 1, 1]
        ),
        feature("t1", 6.0, qtype="float16"),
        helper.make_node("Sigmoid", ["t1_calibrated"], ["s1"], name="sigmoid"),
        feature("s1", 1.0, qtype="float32"),
        feature("s1", 1.0, suffix="_bf16", qtype="bfloat16"),
        feature("x", 3.0, suffix="_off", switch="OFF"),
        helper.make_node("Mul", ["s1_calibrated", "x_calibrated_off"], ["m0"], name="mul"),
        helper.make_node("Add", ["m0", "s1_calibrated_bf16"], ["m1"], name="add"),
        feature("m1", 2.0, qtype="int16", constant=2, scales=[2.0 / 30000]),  # scales are the truth, not 2/32767
        helper.make_node("Constant", [], ["w3"], name="w3_const", value=numpy_helper.from_array(w3)),  # a Constant
        weight("w3", w3, 0),
        helper.make_node("Conv", ["m1_calibrated", "w3_calibrated"], ["c3"], name="conv3"),
        feature("c3", 4.0),  # on a graph output
    ]
    graph = helper.make_graph(
        nodes, "hmct_fixture", [helper.make_tensor_value_info("x", TensorProto.FLOAT, INPUT)],
        [helper.make_tensor_value_info("c3_calibrated", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("c1", TensorProto.FLOAT, None)], inits,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("horizon", 1)])


def samples(n: int) -> list[dict[str, np.ndarray]]:
    return [{"x": RNG.normal(0, 1.2, INPUT).astype(np.float32)} for _ in range(n)]


def _attrs(node: onnx.NodeProto) -> dict:
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def kernel_equivalent(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with each HzCalibration replaced by what its kernel computes, as plain ONNX ops."""
    graph = onnx.helper.make_graph([], model.graph.name, model.graph.input, model.graph.output, model.graph.initializer)
    for node in model.graph.node:
        if node.op_type != "HzCalibration":
            graph.node.append(node)
            continue
        a, (x,), (y,), p = _attrs(node), node.input, node.output, node.name
        qtype = a.get("qtype", f"int{a.get('bits', 8)}")
        if a.get("switch", "ON") == "OFF" or qtype == "float32" or not a.get("scales"):
            graph.node.append(helper.make_node("Identity", [x], [y], name=p))
        elif qtype == "float16":
            lo, hi = (numpy_helper.from_array(np.array(v, np.float32), f"{p}_{v}") for v in (-65504.0, 65504.0))
            graph.initializer.extend([lo, hi])
            graph.node.extend([helper.make_node("Clip", [x, lo.name, hi.name], [p + "_c"]),
                               helper.make_node("Cast", [p + "_c"], [p + "_h"], to=TensorProto.FLOAT16),
                               helper.make_node("Cast", [p + "_h"], [y], to=TensorProto.FLOAT)])  # fmt: skip
        elif qtype == "bfloat16":
            graph.node.extend([helper.make_node("Cast", [x], [p + "_h"], to=TensorProto.BFLOAT16),
                               helper.make_node("Cast", [p + "_h"], [y], to=TensorProto.FLOAT)])  # fmt: skip
        else:
            graph.node.extend(_qdq(graph, a, qtype, x, y, p))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def _qdq(graph: onnx.GraphProto, a: dict, qtype: str, x: str, y: str, p: str) -> list[onnx.NodeProto]:
    dtype = {"int8": np.int8, "int16": np.int16}[qtype]
    scale = np.asarray(a["scales"], np.float32)
    zp = np.broadcast_to(np.asarray(a.get("zero_point", [0])), scale.shape).astype(dtype)
    per_channel = scale.size > 1
    if not per_channel:
        scale, zp = scale.reshape(()), zp.reshape(())
    graph.initializer.extend([numpy_helper.from_array(scale, p + "_s"), numpy_helper.from_array(zp, p + "_z")])
    axis = {"axis": a.get("axis", 1)} if per_channel else {}
    group = a.get("group", 1)
    w = next((i for i in graph.initializer if i.name == x), None)
    if not (per_channel and group > 1 and w is not None and scale.size == group * w.dims[1]):
        return [helper.make_node("QuantizeLinear", [x, p + "_s", p + "_z"], [p + "_q"], **axis),
                helper.make_node("DequantizeLinear", [p + "_q", p + "_s", p + "_z"], [y], **axis)]  # fmt: skip
    # grouped ConvTranspose weight (Cin, Cout/g, k, k): (g, Cin/g, Cout/g, k, k) -> (Cin/g, g * Cout/g, k, k)
    cin, cout, *k = w.dims
    shapes = {n: numpy_helper.from_array(np.array(s, np.int64), f"{p}_{n}") for n, s in
              (("split", [group, cin // group, cout, *k]), ("flat", [cin // group, group * cout, *k]),
               ("back", [cin // group, group, cout, *k]), ("orig", [cin, cout, *k]))}  # fmt: skip
    graph.initializer.extend(shapes.values())
    return [
        helper.make_node("Reshape", [x, shapes["split"].name], [p + "_1"]),
        helper.make_node("Transpose", [p + "_1"], [p + "_2"], perm=[1, 0, 2, 3, 4]),
        helper.make_node("Reshape", [p + "_2", shapes["flat"].name], [p + "_3"]),
        helper.make_node("QuantizeLinear", [p + "_3", p + "_s", p + "_z"], [p + "_q"], axis=1),
        helper.make_node("DequantizeLinear", [p + "_q", p + "_s", p + "_z"], [p + "_4"], axis=1),
        helper.make_node("Reshape", [p + "_4", shapes["back"].name], [p + "_5"]),
        helper.make_node("Transpose", [p + "_5"], [p + "_6"], perm=[1, 0, 2, 3, 4]),
        helper.make_node("Reshape", [p + "_6", shapes["orig"].name], [y]),
    ]
