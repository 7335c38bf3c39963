"""Calibration records: one `CalibrationNode` per quantize-dequantize point, and its `QuantParams`.

A calibration node sits on one tensor and feeds one or more inputs of normal nodes. `tensor_type`
is `feature` (an activation) or `weight`; `qtype` is what the search edits; the thresholds are
kept as float ranges (`rmin`, `rmax`, per tensor or per channel), so raising int8 to int16
recomputes the scale from the range, never from already-rounded int8 values.

A feature node also keeps the range every calibration method gave it (`alternatives`, e.g. "kl",
"percentile-99.999"); an assignment picks one with a qtype such as "int8@kl" (`parse_qtype`). Plain
int16 quantizes over the "max" alternative when there is one (no clipping needed at 16 bits).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import onnx

FEATURE, WEIGHT = "feature", "weight"
QTYPES = ("int8", "int16", "float16", "float32")  # the lattice, cheapest and least precise first
FLOATS = ("float16", "float32")  # not quantized: float32 leaves the tensor alone, float16 rounds it (ir.float16)
EC = "ec"  # int8 + error compensation: not a quantization format, so never passed to quant_params
ASSIGNABLE = (*QTYPES, EC)
LEVEL = {"int8": 0, "ec": 1, "int16": 1, "float16": 2, "float32": 3}  # ec sits beside int16 in the lattice
# Inputs error compensation can split: the op is linear in them (weights of Conv/ConvTranspose/MatMul/Gemm,
# the feature input of Resize/GridSample), so op(x8) + op(residual8) approximates op(x).
EC_INPUTS = frozenset({("Conv", 1), ("ConvTranspose", 1), ("MatMul", 1), ("Gemm", 1), ("Resize", 0), ("GridSample", 0)})
METADATA_KEY = "autoprec.calibration"
BITS = {"int8": 8, "int16": 16}
STORAGE = {
    ("int8", True): np.int8,
    ("int8", False): np.uint8,
    ("int16", True): np.int16,
    ("int16", False): np.uint16,
}
QTYPE_OF_DTYPE = {np.dtype(v): k[0] for k, v in STORAGE.items()}
RANGE_SEPARATOR = "@"  # "int8@kl": int8 with the node's "kl" range instead of its own
FULL_RANGE = "max"  # the alternative plain int16 quantizes with


def parse_qtype(qtype: str) -> tuple[str, str | None]:
    """("int8", "kl") for "int8@kl"; (qtype, None) for a plain qtype."""
    base, _, label = qtype.partition(RANGE_SEPARATOR)
    return base, label or None


def base_qtype(qtype: str) -> str:
    """The quantization format of a qtype, without its range choice ("int8@kl" -> "int8")."""
    return parse_qtype(qtype)[0]


@dataclass
class QuantParams:
    """Scale and zero point of one calibration node at one qtype (arrays: per tensor or per channel)."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None

    @property
    def qmin(self) -> int:
        return int(np.iinfo(self.zero_point.dtype).min)

    @property
    def qmax(self) -> int:
        return int(np.iinfo(self.zero_point.dtype).max)

    def clip_range(self) -> tuple[np.ndarray, np.ndarray]:
        """The float range a quantize op saturates to: [(qmin - zp) * s, (qmax - zp) * s]."""
        zp = self.zero_point.astype(np.float32)
        return (np.float32(self.qmin) - zp) * self.scale, (np.float32(self.qmax) - zp) * self.scale

    def fake_quantize(self, x: np.ndarray) -> np.ndarray:
        """Quantize then dequantize `x` exactly as onnxruntime's QuantizeLinear/DequantizeLinear do."""
        shape = [1] * x.ndim
        if self.axis is not None:
            shape[self.axis] = -1
        scale = self.scale.reshape(shape)
        zp = self.zero_point.astype(np.float32).reshape(shape)
        q = np.clip(np.round(x.astype(np.float32) / scale) + zp, self.qmin, self.qmax)
        return ((q - zp) * scale).astype(np.float32)


@dataclass
class CalibrationNode:
    """One quantize-dequantize point on a tensor, feeding one or more inputs of normal nodes."""

    name: str
    tensor: str
    consumers: list[tuple[str, int]]
    tensor_type: str
    qtype: str
    rmin: np.ndarray
    rmax: np.ndarray
    symmetric: bool = True
    axis: int | None = None
    folded: bool = False  # never raised: a weight stored pre-quantized, or an HMCT node no config can address
    source: dict | None = None  # HMCT: the HzCalibration attributes it was read from (autoprec.ir.hmct_attrs)
    alternatives: dict[str, tuple[float, float]] = field(default_factory=dict)  # method label -> (rmin, rmax)

    def accepts(self, qtype: str) -> bool:
        """True if `qtype` is a known qtype, and its range choice (if any) one of this node's alternatives."""
        base, label = parse_qtype(qtype)
        return base in ASSIGNABLE and (label is None or (base in BITS and label in self.alternatives))

    def range_of(self, qtype: str) -> tuple[np.ndarray, np.ndarray]:
        """(rmin, rmax) a qtype quantizes with: the chosen alternative; for plain int16 the calibration's full
        (max) range when the node has one (16 bits resolve it; a clipped range would keep its clipping error);
        otherwise the node's own thresholds."""
        base, label = parse_qtype(qtype)
        if label is None and base == "int16" and FULL_RANGE in self.alternatives:
            label = FULL_RANGE
        if label is None:
            return np.asarray(self.rmin, dtype=np.float64), np.asarray(self.rmax, dtype=np.float64)
        low, high = self.alternatives[label]
        return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)

    def quant_params(self, qtype: str | None = None) -> QuantParams:
        """Scale and zero point for `qtype` (default: the node's own), computed from the thresholds
        (or, for "int8@label", from that alternative range)."""
        qtype = qtype or self.qtype
        base, label = parse_qtype(qtype)
        if self.source is not None and label is None:
            from autoprec.ir.hmct_attrs import hmct_quant_params

            return hmct_quant_params(self, qtype)
        if base not in BITS:
            raise ValueError(f"{self.name}: qtype {qtype} has no quantization parameters")
        bits = BITS[base]
        dtype = np.dtype(STORAGE[(base, self.symmetric)])
        rmin, rmax = self.range_of(qtype)
        if self.symmetric:
            scale = np.maximum(np.abs(rmin), np.abs(rmax)) / (2 ** (bits - 1) - 1)
            zero_point = np.zeros_like(scale)
        else:
            low, high = np.minimum(rmin, 0.0), np.maximum(rmax, 0.0)
            scale = (high - low) / (2**bits - 1)
            safe = np.where(scale > 0, scale, 1.0)
            zero_point = np.clip(np.round(-low / safe), 0, 2**bits - 1)
        scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
        return QuantParams(scale, zero_point.astype(dtype), self.axis)

    @property
    def threshold(self) -> float:
        """The largest magnitude the node represents (max over channels for weights)."""
        return float(np.max(np.maximum(np.abs(self.rmin), np.abs(self.rmax))))

    def to_json(self) -> dict:
        return {
            "tensor": self.tensor,
            "consumers": [list(c) for c in self.consumers],
            "tensor_type": self.tensor_type,
            "qtype": self.qtype,
            "rmin": np.asarray(self.rmin, dtype=np.float64).tolist(),
            "rmax": np.asarray(self.rmax, dtype=np.float64).tolist(),
            "symmetric": self.symmetric,
            "axis": self.axis,
            "folded": self.folded,
            "source": self.source,
            "alternatives": {k: [float(lo), float(hi)] for k, (lo, hi) in self.alternatives.items()},
        }

    @classmethod
    def from_json(cls, name: str, data: dict) -> CalibrationNode:
        return cls(
            name=name,
            tensor=data["tensor"],
            consumers=[(c[0], int(c[1])) for c in data["consumers"]],
            tensor_type=data["tensor_type"],
            qtype=data["qtype"],
            rmin=np.asarray(data["rmin"], dtype=np.float64),
            rmax=np.asarray(data["rmax"], dtype=np.float64),
            symmetric=bool(data["symmetric"]),
            axis=data["axis"],
            folded=bool(data.get("folded", False)),
            source=data.get("source"),
            alternatives={k: (float(lo), float(hi)) for k, (lo, hi) in data.get("alternatives", {}).items()},
        )


def calibration_name(consumer: str, input_index: int) -> str:
    """Name of the calibration node autoprec places on input `input_index` of node `consumer`."""
    return f"{consumer}:input{input_index}"


def graph_maps(graph: onnx.GraphProto) -> tuple[dict[str, onnx.NodeProto], dict[str, list[tuple[onnx.NodeProto, int]]]]:
    """(tensor -> producing node, tensor -> [(consuming node, input index)]) of a graph."""
    producers = {out: n for n in graph.node for out in n.output}
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = defaultdict(list)
    for node in graph.node:
        for i, name in enumerate(node.input):
            consumers[name].append((node, i))
    return producers, dict(consumers)
