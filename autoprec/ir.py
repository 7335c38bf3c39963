"""The calibrated model: a float ONNX graph plus its calibration nodes (quantize-dequantize points).

A calibration node is one Q -> DQ pair in a QDQ ONNX model. Loading strips the pairs out of the
graph and keeps them as `CalibrationNode` records (tensor, consumers, qtype, thresholds), so a
qtype or threshold can be changed and the model rendered again (`to_onnx`) without re-calibrating.
Thresholds are kept as float ranges, so int8 -> int16 recomputes the scale from the range (never
from already-rounded int8 values).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from autoprec.errors import UserError
from autoprec.model_io import load_model, save_model

FEATURE, WEIGHT = "feature", "weight"
QTYPES = ("int8", "int16", "float32")
METADATA_KEY = "autoprec.calibration"
_BITS = {"int8": 8, "int16": 16}
_STORAGE = {
    ("int8", True): np.int8,
    ("int8", False): np.uint8,
    ("int16", True): np.int16,
    ("int16", False): np.uint16,
}
_QTYPE_OF_DTYPE = {np.dtype(v): k[0] for k, v in _STORAGE.items()}


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
    folded: bool = False  # weight was stored pre-quantized: it cannot be raised honestly

    def quant_params(self, qtype: str | None = None) -> QuantParams:
        """Scale and zero point for `qtype` (default: the node's own), computed from the thresholds."""
        qtype = qtype or self.qtype
        if qtype not in _BITS:
            raise ValueError(f"{self.name}: qtype {qtype} has no quantization parameters")
        bits = _BITS[qtype]
        dtype = np.dtype(_STORAGE[(qtype, self.symmetric)])
        rmin = np.asarray(self.rmin, dtype=np.float64)
        rmax = np.asarray(self.rmax, dtype=np.float64)
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
        )


def calibration_name(consumer: str, input_index: int) -> str:
    """Name of the calibration node autoprec places on input `input_index` of node `consumer`."""
    return f"{consumer}:input{input_index}"


@dataclass
class CalibratedModel:
    """A float graph (`model`, without Q/DQ) and the calibration nodes that quantize it."""

    model: onnx.ModelProto
    calibration: dict[str, CalibrationNode]
    settings: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.nodes = {n.name: n for n in self.model.graph.node}
        self.initializers = {i.name: i for i in self.model.graph.initializer}
        self._by_input = {c: cal for cal in self.calibration.values() for c in cal.consumers}
        self.producers = {out: n for n in self.model.graph.node for out in n.output}
        consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in self.model.graph.node:
            for name in node.input:
                consumers[name].append(node)
        self.consumers = dict(consumers)

    # --- loading and saving -------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike) -> CalibratedModel:
        """Load a calibrated (QDQ) model written by autoprec or by any QDQ quantizer."""
        return cls.from_proto(load_model(path), source=str(path))

    @classmethod
    def from_proto(cls, model: onnx.ModelProto, source: str = "model") -> CalibratedModel:
        model, parsed = _strip_qdq(model)
        meta = {p.key: p.value for p in model.metadata_props}
        settings: dict = {}
        if METADATA_KEY in meta:
            stored = json.loads(meta[METADATA_KEY])
            settings = stored.get("settings", {})
            recorded = {k: CalibrationNode.from_json(k, v) for k, v in stored["nodes"].items()}
            in_graph = {k for k, v in recorded.items() if v.qtype != "float32"}
            if in_graph == set(parsed):
                for name, cal in recorded.items():
                    if name in parsed:
                        cal.qtype = parsed[name].qtype
                parsed = recorded
        if not parsed:
            raise UserError(
                f"{source}: no calibration nodes (QuantizeLinear/DequantizeLinear pairs) found; "
                "run `autoprec calibrate` on the float model first"
            )
        return cls(model, parsed, settings)

    def save(self, path: str | os.PathLike) -> None:
        """Write the model as a QDQ ONNX file with every calibration node at its current qtype."""
        save_model(self.to_onnx(), path)

    # --- lookups ------------------------------------------------------------------------
    def find_input_calibration(self, node: str, index: int) -> CalibrationNode | None:
        """The calibration node on input `index` of normal node `node`, if any."""
        if node not in self.nodes:
            raise UserError(f"unknown node '{node}'; see `autoprec sensitivity` for node names")
        return self._by_input.get((node, index))

    def find_output_calibration(self, node: str) -> list[CalibrationNode]:
        """The calibration nodes that quantize the outputs of normal node `node`."""
        outputs = set(self.nodes[node].output)
        return [c for c in self.calibration.values() if c.tensor in outputs]

    def nodes_of_type(self, op_type: str) -> list[onnx.NodeProto]:
        return [n for n in self.model.graph.node if n.op_type == op_type]

    def input_calibrations(self, node: str) -> list[CalibrationNode]:
        """All calibration nodes on the inputs of a normal node, by input index."""
        return [self._by_input[(node, i)] for i in range(len(self.nodes[node].input)) if (node, i) in self._by_input]

    def op_type(self, cal: CalibrationNode) -> str:
        return self.nodes[cal.consumers[0][0]].op_type

    # --- edits --------------------------------------------------------------------------
    def set_qtype(self, name: str, qtype: str) -> None:
        if qtype not in QTYPES:
            raise UserError(f"unknown qtype '{qtype}'; use one of {', '.join(QTYPES)}")
        self._get(name).qtype = qtype

    def set_thresholds(self, name: str, rmin: float | np.ndarray, rmax: float | np.ndarray) -> None:
        cal = self._get(name)
        cal.rmin, cal.rmax = np.asarray(rmin, dtype=np.float64), np.asarray(rmax, dtype=np.float64)

    def assignment(self) -> dict[str, str]:
        """The current qtype of every calibration node."""
        return {name: cal.qtype for name, cal in self.calibration.items()}

    def apply(self, assignment: dict[str, str]) -> None:
        """Set the qtypes named in `assignment` (calibration node -> qtype)."""
        for name, qtype in assignment.items():
            self.set_qtype(name, qtype)

    def _get(self, name: str) -> CalibrationNode:
        if name not in self.calibration:
            raise UserError(f"unknown calibration node '{name}'")
        return self.calibration[name]

    # --- rendering ----------------------------------------------------------------------
    def to_onnx(self, assignment: dict[str, str] | None = None) -> onnx.ModelProto:
        """A static QDQ model with each calibration node at its qtype (or `assignment`'s)."""
        qtypes = {**self.assignment(), **(assignment or {})}
        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        graph = model.graph
        by_consumer: dict[str, list[CalibrationNode]] = defaultdict(list)
        for name, cal in self.calibration.items():
            if qtypes[name] != "float32":
                by_consumer[cal.consumers[0][0]].append(cal)
        rewired = {c: cal for cal in self.calibration.values() if qtypes[cal.name] != "float32" for c in cal.consumers}
        nodes = []
        for node in graph.node:
            for cal in by_consumer.get(node.name, []):
                nodes.extend(_qdq_nodes(cal, cal.quant_params(qtypes[cal.name]), graph))
            new = onnx.NodeProto()
            new.CopyFrom(node)
            for i in range(len(new.input)):
                if (node.name, i) in rewired:
                    new.input[i] = f"{rewired[(node.name, i)].name}/dequantized"
            nodes.append(new)
        del graph.node[:]
        graph.node.extend(nodes)
        record = {"settings": self.settings, "nodes": {k: v.to_json() for k, v in self.calibration.items()}}
        for cal in self.calibration.values():
            record["nodes"][cal.name]["qtype"] = qtypes[cal.name]
        _set_metadata(model, METADATA_KEY, json.dumps(record))
        return model


def _qdq_nodes(cal: CalibrationNode, params: QuantParams, graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    scale, zero_point = f"{cal.name}/scale", f"{cal.name}/zero_point"
    graph.initializer.extend(
        [numpy_helper.from_array(params.scale, scale), numpy_helper.from_array(params.zero_point, zero_point)]
    )
    axis = {} if params.axis is None else {"axis": params.axis}
    quantized, dequantized = f"{cal.name}/quantized", f"{cal.name}/dequantized"
    return [
        helper.make_node(
            "QuantizeLinear", [cal.tensor, scale, zero_point], [quantized], name=f"{cal.name}/QuantizeLinear", **axis
        ),
        helper.make_node(
            "DequantizeLinear",
            [quantized, scale, zero_point],
            [dequantized],
            name=f"{cal.name}/DequantizeLinear",
            **axis,
        ),
    ]


def _set_metadata(model: onnx.ModelProto, key: str, value: str) -> None:
    for prop in model.metadata_props:
        if prop.key == key:
            prop.value = value
            return
    model.metadata_props.add(key=key, value=value)


def _strip_qdq(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, CalibrationNode]]:
    """Remove every Q -> DQ pair (and DQ on a stored integer weight) from a copy of `model`."""
    stripped = onnx.ModelProto()
    stripped.CopyFrom(model)
    graph = stripped.graph
    inits = {i.name: i for i in graph.initializer}
    producers = {out: n for n in graph.node for out in n.output}
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = defaultdict(list)
    for node in graph.node:
        for i, name in enumerate(node.input):
            consumers[name].append((node, i))
    removed: set[int] = set()
    found: dict[str, CalibrationNode] = {}
    new_inits: list[onnx.TensorProto] = []
    for dq in graph.node:
        if dq.op_type != "DequantizeLinear" or dq.domain not in ("", "com.microsoft"):
            continue
        q = producers.get(dq.input[0])
        folded = dq.input[0] in inits
        if not folded and (q is None or q.op_type != "QuantizeLinear"):
            continue
        scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float32)
        zp_name = dq.input[2] if len(dq.input) > 2 else ""
        zero_point = numpy_helper.to_array(inits[zp_name]) if zp_name else np.zeros_like(scale, dtype=np.uint8)
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1) if scale.size > 1 else None
        if folded:
            stored = numpy_helper.to_array(inits[dq.input[0]])
            params = QuantParams(scale.reshape(-1), zero_point.reshape(-1), axis)
            tensor = dq.input[0] + "_float"
            shape = [1] * stored.ndim
            if axis is not None:
                shape[axis] = -1
            values = (stored.astype(np.float32) - zero_point.astype(np.float32).reshape(shape)) * scale.reshape(shape)
            new_inits.append(numpy_helper.from_array(values.astype(np.float32), tensor))
        else:
            params = QuantParams(scale.reshape(-1), zero_point.reshape(-1), axis)
            tensor = q.input[0]
            removed.add(id(q))
        removed.add(id(dq))
        uses = consumers.get(dq.output[0], [])
        for node, i in uses:
            node.input[i] = tensor
        for out in graph.output:
            if out.name == dq.output[0]:
                out.name = tensor
        low, high = params.clip_range()
        symmetric = bool(np.all(zero_point == 0) and np.dtype(zero_point.dtype).kind == "i")
        if symmetric:
            bits = _BITS[_QTYPE_OF_DTYPE[np.dtype(zero_point.dtype)]]
            high = params.scale.astype(np.float64) * (2 ** (bits - 1) - 1)
            low = -high
        name = dq.name.removesuffix("/DequantizeLinear").removesuffix("_DequantizeLinear") or dq.output[0]
        is_weight = folded or tensor in inits or (tensor in producers and producers[tensor].op_type == "Constant")
        found[name] = CalibrationNode(
            name=name,
            tensor=tensor,
            consumers=[(n.name, i) for n, i in uses],
            tensor_type=WEIGHT if is_weight else FEATURE,
            qtype=_QTYPE_OF_DTYPE[np.dtype(zero_point.dtype)],
            rmin=np.asarray(low, dtype=np.float64).reshape(-1) if axis is not None else np.float64(np.ravel(low)[0]),
            rmax=np.asarray(high, dtype=np.float64).reshape(-1) if axis is not None else np.float64(np.ravel(high)[0]),
            symmetric=symmetric,
            axis=axis,
            folded=folded,
        )
    kept = [n for n in graph.node if id(n) not in removed]
    del graph.node[:]
    graph.node.extend(kept)
    graph.initializer.extend(new_inits)
    used = {name for n in graph.node for name in n.input}
    unused = [i for i in graph.initializer if i.name not in used and i.name not in {g.name for g in graph.input}]
    for init in unused:
        graph.initializer.remove(init)
    name_nodes(graph)
    return stripped, found


def name_nodes(graph: onnx.GraphProto) -> None:
    """Give every unnamed node a unique name (`<OpType>_<index>`), as the search addresses nodes by name."""
    taken = {n.name for n in graph.node if n.name}
    for index, node in enumerate(graph.node):
        if not node.name:
            name = f"{node.op_type}_{index}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)
