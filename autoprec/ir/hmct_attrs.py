"""HMCT's HzCalibration node: its attributes as a JSON-ready dict, and what its kernel computes.

A node is stored as plain ONNX attributes (`qtype` or legacy `bits`, `thresholds`, `scales`,
`zero_point`, `axis`, `group`, `constant`, `switch`, the `quant_attrs` bit field...). The kernel
quantizes integer qtypes exactly as a QuantizeLinear/DequantizeLinear pair with the stored `scales`;
`float16`/`bfloat16` are a cast and back; `float32`, `switch == "OFF"` and a node without `scales`
pass data through. Raising a node to another integer qtype recomputes its scale from its
thresholds as HMCT does (symmetric: threshold / (2^(N-1) - 1); asymmetric: (max - min) /
(qmax - qmin), zp = qmax - round(max / scale)). What autoprec cannot reproduce exactly is a
one-line `UserError` (`node_kind`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import helper, numpy_helper

from autoprec.errors import UserError
from autoprec.ir.records import FEATURE, WEIGHT, QuantParams

if TYPE_CHECKING:
    from autoprec.ir.records import CalibrationNode

HZ_OP, HZ_DOMAIN = "HzCalibration", "horizon"
SCALE, SHIFT, SYMMETRIC, ASYMMETRIC, STATIC, DYNAMIC = 0x1, 0x2, 0x10, 0x20, 0x100, 0x200
PER_TENSOR, PER_CHANNEL, PER_BLOCK, FEATURE_BIT, WEIGHT_BIT = 0x1000, 0x2000, 0x4000, 0x10000, 0x20000
SEARCHABLE = {"int8": np.int8, "int16": np.int16}
CASTS = {"float16": onnx.TensorProto.FLOAT16, "bfloat16": onnx.TensorProto.BFLOAT16}
FLOAT16_MAX = 65504.0  # HMCT's float16 saturates here (a plain cast would give inf)
_UNSUPPORTED_BITS = {SHIFT: "power-of-two (shift) scales", DYNAMIC: "dynamic quantization", PER_BLOCK: "per-block"}


def is_hz(node: onnx.NodeProto) -> bool:
    return node.op_type == HZ_OP and node.domain in (HZ_DOMAIN, "")


def read_attributes(node: onnx.NodeProto) -> dict:
    """The node's attributes as JSON-ready values (strings decoded, repeated fields as lists)."""
    attrs = {}
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, (list, tuple)):
            value = [v.decode() if isinstance(v, bytes) else v for v in value]
        attrs[attr.name] = value
    return attrs


def qtype_of(attrs: dict) -> str:
    """`qtype`, or `"int" + bits` for older files (default int8)."""
    if "qtype" in attrs:
        return str(attrs["qtype"])
    return f"int{attrs['bits']}" if "bits" in attrs else "int8"


def node_kind(name: str, attrs: dict) -> str:
    """ "search" (int8/int16 with scales: a calibration node), "identity" (passes data through) or "cast"."""
    qtype = qtype_of(attrs)
    if int(attrs.get("constant", 1)) == 0:
        raise UserError(f"{name}: constant == 0, still being calibrated; use HMCT's finished calibrated model")
    if str(attrs.get("switch", "ON")).upper() == "OFF" or qtype == "float32":
        return "identity"
    if qtype in CASTS:
        return "cast"
    if qtype not in SEARCHABLE:
        raise UserError(
            f"{name}: qtype '{qtype}' is not supported (autoprec reads int8, int16, float16, bfloat16, float32); "
            "change it in HMCT's quant_config and recalibrate"
        )
    if not attrs.get("scales"):
        return "identity"  # the kernel passes data through without scales
    for bit, what in _UNSUPPORTED_BITS.items():
        if int(attrs.get("quant_attrs", 0)) & bit:
            raise UserError(f"{name}: {what} quantization is not supported; calibrate with plain scales in HMCT")
    if attrs.get("channel_scales") or "dequantize_scale" in attrs:
        raise UserError(f"{name}: per-channel activation scaling (channel_scales) is not supported")
    if not all(s > 0 and np.isfinite(s) for s in attrs["scales"]):
        raise UserError(f"{name}: scales must be finite and positive, got {attrs['scales'][:4]}...")
    return "search"


def is_symmetric(attrs: dict) -> bool:
    bits = int(attrs.get("quant_attrs", 0))
    if bits & ASYMMETRIC:
        return False
    return bool(bits & SYMMETRIC) or not any(attrs.get("zero_point", []))


def tensor_type(attrs: dict, is_constant: bool) -> str:
    """feature / weight from quant_attrs (0x10000 / 0x20000), else from whether the input is a constant."""
    bits = int(attrs.get("quant_attrs", 0))
    if bits & WEIGHT_BIT:
        return WEIGHT
    if bits & FEATURE_BIT:
        return FEATURE
    return WEIGHT if is_constant else FEATURE


def ranges(name: str, attrs: dict) -> tuple[np.ndarray, np.ndarray, int | None]:
    """(rmin, rmax, axis) of a searchable node: float64 thresholds, per tensor or per channel."""
    qmax = np.iinfo(SEARCHABLE[qtype_of(attrs)]).max
    scales = np.asarray(attrs["scales"], dtype=np.float64)
    if is_symmetric(attrs):
        thresholds = np.asarray(attrs.get("thresholds") or (scales * qmax).tolist(), dtype=np.float64)
        per_channel = thresholds.size > 1
        if thresholds.size != scales.size:
            raise UserError(f"{name}: {thresholds.size} thresholds but {scales.size} scales; recalibrate in HMCT")
        rmin, rmax = -np.abs(thresholds), np.abs(thresholds)
    else:
        thresholds = np.asarray(attrs.get("thresholds", []), dtype=np.float64)
        if thresholds.size != 2 or scales.size != 1:
            raise UserError(f"{name}: asymmetric thresholds must be one [min, max] pair (per tensor)")
        per_channel, rmin, rmax = False, thresholds[:1], thresholds[1:]
    if not per_channel:
        return np.float64(rmin[0]), np.float64(rmax[0]), None
    return rmin, rmax, int(attrs.get("axis", 1))


def hmct_quant_params(cal: CalibrationNode, qtype: str) -> QuantParams:
    """What HMCT's kernel quantizes `cal` with at `qtype`: its stored scales at its own qtype, else recomputed."""
    if qtype not in SEARCHABLE:
        raise ValueError(f"{cal.name}: qtype {qtype} has no quantization parameters")
    attrs, dtype = cal.source or {}, SEARCHABLE[qtype]
    info = np.iinfo(dtype)
    rmin, rmax = np.asarray(cal.rmin, dtype=np.float64), np.asarray(cal.rmax, dtype=np.float64)
    if qtype == qtype_of(attrs) and attrs.get("scales"):
        scale = np.asarray(attrs["scales"], dtype=np.float32)
        zero_point = np.broadcast_to(np.asarray(attrs.get("zero_point") or [0], dtype=np.float64), scale.shape)
    elif cal.symmetric:
        scale = np.maximum(np.abs(rmin), np.abs(rmax)) / info.max
        zero_point = np.zeros_like(scale)
    else:
        scale = (rmax - rmin) / (int(info.max) - int(info.min))
        zero_point = info.max - np.round(rmax / np.where(scale > 0, scale, 1.0))
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)  # an all-zero channel: any scale represents it
    zero_point = np.clip(zero_point, info.min, info.max).astype(dtype)
    if cal.axis is None:
        scale, zero_point = scale.reshape(-1)[0].reshape(()), zero_point.reshape(-1)[0].reshape(())
    return GroupedQuantParams(scale, zero_point, cal.axis, int(attrs.get("group", 1)))


class GroupedQuantParams(QuantParams):
    """QuantParams whose per-channel scales may cover all `groups` of a grouped ConvTranspose weight.

    Such a weight (Cin, Cout/g, ...) carries Cout scales (Cout/g per group, groups along axis 0):
    element [i, c] uses scale[(i // (Cin/g)) * (Cout/g) + c]."""

    def __init__(self, scale: np.ndarray, zero_point: np.ndarray, axis: int | None, groups: int = 1):
        super().__init__(scale, zero_point, axis)
        self.groups = groups

    def fake_quantize(self, x: np.ndarray) -> np.ndarray:
        g = self.groups
        if self.axis is None or g <= 1 or self.scale.size != g * x.shape[self.axis]:
            return super().fake_quantize(x)
        if self.axis != 1 or x.shape[0] % g:
            raise UserError(f"grouped per-channel scales on axis {self.axis} of shape {x.shape} are not supported")
        shape = [g, 1, x.shape[1]] + [1] * (x.ndim - 2)
        grouped = x.astype(np.float32).reshape(g, x.shape[0] // g, *x.shape[1:])
        scale = self.scale.reshape(shape)
        zp = self.zero_point.astype(np.float32).reshape(shape)
        q = np.clip(np.round(grouped / scale) + zp, self.qmin, self.qmax)
        return ((q - zp) * scale).reshape(x.shape).astype(np.float32)

    def grouped_qdq_nodes(self, name: str, tensor: str, graph: onnx.GraphProto) -> list[onnx.NodeProto] | None:
        """Q/DQ of a grouped weight as standard ONNX (None if not grouped): (Cin, Cout/g, k...) is viewed as
        (Cin/g, g * Cout/g, k...) by Reshape/Transpose, quantized per axis 1, and viewed back."""
        weight = next((i for i in graph.initializer if i.name == tensor), None)
        g = self.groups
        if weight is None or self.axis != 1 or g <= 1 or self.scale.size != g * weight.dims[1]:
            return None
        cin, cout, *kernel = weight.dims
        views = {key: numpy_helper.from_array(np.array(shape, np.int64), f"{name}/shape_{key}") for key, shape in (
            ("split", [g, cin // g, cout, *kernel]), ("flat", [cin // g, g * cout, *kernel]),
            ("unflat", [cin // g, g, cout, *kernel]), ("whole", [cin, cout, *kernel]))}  # fmt: skip
        params = [numpy_helper.from_array(self.scale, f"{name}/scale"),
                  numpy_helper.from_array(self.zero_point, f"{name}/zero_point")]  # fmt: skip
        graph.initializer.extend([*views.values(), *params])
        perm = [1, 0, *range(2, 2 + 1 + len(kernel))]
        qdq = [f"{name}/flat", params[0].name, params[1].name]
        steps = [
            ("Reshape", [tensor, views["split"].name], "split"), ("Transpose", [f"{name}/split"], "swapped"),
            ("Reshape", [f"{name}/swapped", views["flat"].name], "flat"), ("QuantizeLinear", qdq, "quantized"),
            ("DequantizeLinear", [f"{name}/quantized", *qdq[1:]], "flat_dq"),
            ("Reshape", [f"{name}/flat_dq", views["unflat"].name], "unflat"), ("Transpose", [f"{name}/unflat"], "back"),
            ("Reshape", [f"{name}/back", views["whole"].name], "dequantized"),
        ]  # fmt: skip
        return [
            helper.make_node(op, inputs, [f"{name}/{out}"], name=f"{name}/{out}/{op}",
                             **({"perm": perm} if op == "Transpose" else {"axis": 1} if "Linear" in op else {}))
            for op, inputs, out in steps
        ]  # fmt: skip


def quant_attrs_bits(symmetric: bool, per_channel: bool, weight: bool) -> int:
    """The quant_attrs bit field HMCT writes for a plain scale-mode static node."""
    bits = SCALE | STATIC | (SYMMETRIC if symmetric else ASYMMETRIC)
    return bits | (PER_CHANNEL if per_channel else PER_TENSOR) | (WEIGHT_BIT if weight else FEATURE_BIT)
