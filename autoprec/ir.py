"""The calibrated model: a float ONNX graph plus its calibration nodes (quantize-dequantize points).

A calibration node is one Q -> DQ pair in a QDQ ONNX model. Loading strips the pairs out of the
graph and keeps them as `CalibrationNode` records (tensor, consumers, qtype, thresholds), so a
qtype or threshold can be changed and the model rendered again (`to_onnx`) without re-calibrating.
Thresholds are kept as float ranges, so int8 -> int16 recomputes the scale from the range (never
from already-rounded int8 values).

qtype "ec" (error compensation) is int8 plus a second int8 term on the quantization residual:
`to_onnx` renders it as a duplicated op `<node>_split_low` fed with Q/DQ(residual) and an Add of
the two results; loading such a model folds the rewrite back into an "ec" calibration node.
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
EC = "ec"  # int8 + error compensation: not a quantization format, so never passed to quant_params
ASSIGNABLE = (*QTYPES, EC)
# Inputs error compensation can split: the op is linear in them (weights of Conv/ConvTranspose/MatMul/Gemm,
# the feature input of Resize/GridSample), so op(x8) + op(residual8) approximates op(x).
EC_INPUTS = frozenset({("Conv", 1), ("ConvTranspose", 1), ("MatMul", 1), ("Gemm", 1), ("Resize", 0), ("GridSample", 0)})
SPLIT_LOW = "_split_low"
_BIASED = {"Conv", "ConvTranspose", "Gemm"}  # input 2 is a bias: it stays in the main branch only
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
        model, compensated = _strip_ec(model)
        model, parsed = _strip_qdq(model)
        for cal in parsed.values():
            if any(c in compensated for c in cal.consumers):
                cal.qtype = EC
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
        if qtype not in ASSIGNABLE:
            raise UserError(f"unknown qtype '{qtype}'; use one of {', '.join(ASSIGNABLE)}")
        cal = self._get(name)
        self._check_ec(cal, qtype)
        cal.qtype = qtype

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

    # --- error compensation ----------------------------------------------------------------
    def ec_capable(self, cal: CalibrationNode) -> bool:
        """True if every input the node feeds can be split for error compensation (see EC_INPUTS)."""
        return bool(cal.consumers) and all((self.nodes[n].op_type, i) in EC_INPUTS for n, i in cal.consumers)

    def weight_values(self, cal: CalibrationNode) -> np.ndarray:
        """The float values of a weight calibration node's tensor (an initializer or a Constant)."""
        if cal.tensor in self.initializers:
            return numpy_helper.to_array(self.initializers[cal.tensor]).astype(np.float32)
        producer = self.producers.get(cal.tensor)
        value = next((a.t for a in producer.attribute if a.name == "value"), None) if producer is not None else None
        if value is None:
            raise UserError(f"{cal.name}: weight tensor '{cal.tensor}' is neither an initializer nor a Constant")
        return numpy_helper.to_array(value).astype(np.float32)

    def residual_params(self, name: str) -> QuantParams:
        """Symmetric int8 parameters of the residual an "ec" node adds (x - DQ8(Q8(x))).

        Weights: per channel (the node's own axis), threshold max|r_c| over the channel.
        Features: threshold = half the int8 scale (the largest in-range rounding error)."""
        cal = self._get(name)
        main = cal.quant_params("int8")
        if cal.tensor_type == WEIGHT:
            residual = np.abs(self.weight_residual(name)).astype(np.float64)
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

    def weight_residual(self, name: str) -> np.ndarray:
        """r = W - DQ8(Q8(W)) of a weight calibration node, in float32 (what the `_split_low` op multiplies)."""
        cal = self._get(name)
        weight = self.weight_values(cal)
        return (weight - cal.quant_params("int8").fake_quantize(weight)).astype(np.float32)

    def compensated_weight(self, name: str) -> np.ndarray:
        """DQ8(Q8(W)) + DQ(Q(r)) of an "ec" weight: by linearity, op(x, this) == op(x, W8) + op(x, r8)."""
        cal = self._get(name)
        weight = self.weight_values(cal)
        main = cal.quant_params("int8").fake_quantize(weight)
        return (main + self.residual_params(name).fake_quantize(self.weight_residual(name))).astype(np.float32)

    def _check_ec(self, cal: CalibrationNode, qtype: str) -> None:
        if qtype == EC and not self.ec_capable(cal):
            ops = ", ".join(f"{self.nodes[n].op_type} input {i}" for n, i in cal.consumers) or "no consumer"
            raise UserError(
                f"{cal.name}: error compensation (ec) applies only to Conv/ConvTranspose/MatMul/Gemm input 1 "
                f"and Resize/GridSample input 0, not {ops}"
            )

    def _get(self, name: str) -> CalibrationNode:
        if name not in self.calibration:
            raise UserError(f"unknown calibration node '{name}'")
        return self.calibration[name]

    # --- rendering ----------------------------------------------------------------------
    def to_onnx(self, assignment: dict[str, str] | None = None) -> onnx.ModelProto:
        """A static QDQ model with each calibration node at its qtype (or `assignment`'s).

        An "ec" node renders as its int8 Q/DQ plus, for each op it feeds, a copy `<op>_split_low` of the
        op on Q/DQ(residual) (weights: a residual initializer; features: Sub(x, DQ8(Q8(x)))) and an Add
        `<op>_split_add` of both results, which keeps the op's original output name."""
        qtypes = {**self.assignment(), **(assignment or {})}
        for name, qtype in qtypes.items():
            if qtype not in ASSIGNABLE:
                raise UserError(f"{name}: unknown qtype '{qtype}'; use one of {', '.join(ASSIGNABLE)}")
            self._check_ec(self._get(name), qtype)
        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        graph = model.graph
        by_consumer: dict[str, list[CalibrationNode]] = defaultdict(list)
        for name, cal in self.calibration.items():
            if qtypes[name] != "float32":
                by_consumer[cal.consumers[0][0]].append(cal)
        rewired = {c: cal for cal in self.calibration.values() if qtypes[cal.name] != "float32" for c in cal.consumers}
        compensated = {c: cal for cal in self.calibration.values() if qtypes[cal.name] == EC for c in cal.consumers}
        nodes = []
        for node in graph.node:
            for cal in by_consumer.get(node.name, []):
                qtype = qtypes[cal.name]
                nodes.extend(
                    _qdq_nodes(cal.name, cal.tensor, cal.quant_params("int8" if qtype == EC else qtype), graph)
                )
                if qtype == EC:
                    nodes.extend(self._residual_nodes(cal, graph))
            new = onnx.NodeProto()
            new.CopyFrom(node)
            for i in range(len(new.input)):
                if (node.name, i) in rewired:
                    new.input[i] = f"{rewired[(node.name, i)].name}/dequantized"
            split = {i: cal for i in range(len(new.input)) if (cal := compensated.get((node.name, i))) is not None}
            nodes.extend(_split_nodes(new, split) if split else [new])
        del graph.node[:]
        graph.node.extend(nodes)
        record = {"settings": self.settings, "nodes": {k: v.to_json() for k, v in self.calibration.items()}}
        for cal in self.calibration.values():
            record["nodes"][cal.name]["qtype"] = qtypes[cal.name]
        _set_metadata(model, METADATA_KEY, json.dumps(record))
        return model

    def _residual_nodes(self, cal: CalibrationNode, graph: onnx.GraphProto) -> list[onnx.NodeProto]:
        """Q/DQ of the int8 residual of an "ec" node (output `<cal>/residual/dequantized`)."""
        prefix, nodes = f"{cal.name}/residual", []
        source = f"{prefix}/float"
        if cal.tensor_type == WEIGHT:
            graph.initializer.append(numpy_helper.from_array(self.weight_residual(cal.name), source))
        else:
            nodes.append(
                helper.make_node("Sub", [cal.tensor, f"{cal.name}/dequantized"], [source], name=f"{prefix}/Sub")
            )
        return nodes + _qdq_nodes(prefix, source, self.residual_params(cal.name), graph)


def _split_nodes(main: onnx.NodeProto, split: dict[int, CalibrationNode]) -> list[onnx.NodeProto]:
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


def _qdq_nodes(name: str, tensor: str, params: QuantParams, graph: onnx.GraphProto) -> list[onnx.NodeProto]:
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


def _set_metadata(model: onnx.ModelProto, key: str, value: str) -> None:
    for prop in model.metadata_props:
        if prop.key == key:
            prop.value = value
            return
    model.metadata_props.add(key=key, value=value)


def _strip_ec(model: onnx.ModelProto) -> tuple[onnx.ModelProto, set[tuple[str, int]]]:
    """Fold every error-compensation rewrite (`to_onnx` of an "ec" node) back into its main op.

    Returns a copy of `model` without the `_split_low` ops, their Adds and residual Q/DQ (and Sub), and
    the (op, input index) pairs that were compensated. Anything not shaped like the rewrite is kept."""
    stripped = onnx.ModelProto()
    stripped.CopyFrom(model)
    graph = stripped.graph
    nodes = {n.name: n for n in graph.node}
    producers = {out: n for n in graph.node for out in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
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
            if not zp_name:
                zero_point = np.zeros_like(scale, dtype=stored.dtype)
            tensor = dq.input[0] + "_float"
            shape = [1] * stored.ndim
            if axis is not None:
                shape[axis] = -1
            values = (stored.astype(np.float32) - zero_point.astype(np.float32).reshape(shape)) * scale.reshape(shape)
            new_inits.append(numpy_helper.from_array(values.astype(np.float32), tensor))
        else:
            tensor = q.input[0]
            removed.add(id(q))
            if any(out.name == dq.output[0] for out in graph.output):  # keep the model's output name
                _rename_tensor(graph, tensor, dq.output[0], skip=q)
                tensor = dq.output[0]
        removed.add(id(dq))
        uses = consumers.get(dq.output[0], [])
        for node, i in uses:
            node.input[i] = tensor
        if np.dtype(zero_point.dtype) not in _QTYPE_OF_DTYPE or not uses:
            continue  # an int32 bias, or a Q/DQ on a model output: folded to float, never a calibration node
        params = QuantParams(scale.reshape(-1), zero_point.reshape(-1), axis)
        zp64, scale64 = zero_point.astype(np.float64).reshape(-1), scale.astype(np.float64).reshape(-1)
        low, high = (params.qmin - zp64) * scale64, (params.qmax - zp64) * scale64
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


def _rename_tensor(graph: onnx.GraphProto, old: str, new: str, skip: onnx.NodeProto) -> None:
    """Rename tensor `old` to `new` everywhere in the graph except in node `skip`."""
    for node in graph.node:
        if node is skip:
            continue
        for names in (node.input, node.output):
            for k, name in enumerate(names):
                if name == old:
                    names[k] = new


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
