"""QDQ import: any QDQ ONNX model -> `CalibratedModel` (float graph + calibration records).

Every QuantizeLinear -> DequantizeLinear pair (and a DequantizeLinear on a stored integer weight,
marked `folded`) is stripped out of the graph and kept as a `CalibrationNode`; an error-compensation
rewrite is folded back into qtype "ec", a float16 round trip (`autoprec.ir.float16`) into qtype
"float16". Models written by autoprec carry their float thresholds in metadata, which are used when
they describe exactly the pairs found in the graph.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import helper, numpy_helper, version_converter

from autoprec.errors import UserError
from autoprec.ir.ec import strip_ec
from autoprec.ir.float16 import FLOAT16_MAX, strip_float16
from autoprec.ir.fused import restore_folded_relus
from autoprec.ir.model import CalibratedModel
from autoprec.ir.records import (
    BITS,
    EC,
    FEATURE,
    METADATA_KEY,
    QTYPE_OF_DTYPE,
    WEIGHT,
    CalibrationNode,
    QuantParams,
    graph_maps,
)


def from_proto(model: onnx.ModelProto, source: str = "model") -> CalibratedModel:
    """The calibrated model a QDQ ONNX model describes (`source` names it in errors)."""
    model, compensated = strip_ec(model)
    model, parsed = strip_qdq(model, source)
    parsed.update(float16_nodes(model))
    model = _upgrade_opset(model, parsed, source)
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
            _check_metadata(recorded, parsed, source)
            for name, cal in recorded.items():
                if name in parsed:
                    cal.qtype = parsed[name].qtype
            parsed = recorded
    elif restored := restore_folded_relus(model, parsed):
        settings["restored_relus"] = restored
    if not parsed:
        raise UserError(
            f"{source}: no calibration nodes (QuantizeLinear/DequantizeLinear pairs) found; "
            "run `autoprec calibrate` on the float model first"
        )
    return CalibratedModel(model, parsed, settings)


QDQ_OPSET = 21  # int16 QuantizeLinear/DequantizeLinear need opset 21 in the default domain


def _upgrade_opset(model: onnx.ModelProto, parsed: dict[str, CalibrationNode], source: str) -> onnx.ModelProto:
    """The float graph at opset 21, so every qtype exports as standard Q/DQ (a quantizer may have used opset < 21
    with com.microsoft Q/DQ for 16 bits); refused if the conversion renames the nodes calibration refers to."""
    version = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), QDQ_OPSET)
    if version >= QDQ_OPSET:
        return model
    try:
        converted = version_converter.convert_version(model, QDQ_OPSET)
    except Exception as exc:  # onnx raises RuntimeError/ValidationError subclasses for unconvertible graphs
        raise UserError(
            f"{source}: its float graph (opset {version}) cannot be converted to opset {QDQ_OPSET}, which int16 "
            f"Q/DQ needs ({str(exc).strip().splitlines()[0][:150] if str(exc).strip() else type(exc).__name__}); "
            f"re-quantize the model at opset {QDQ_OPSET}"
        ) from exc
    names = {n.name: len(n.input) for n in converted.graph.node}
    if any(names.get(node, -1) <= i for cal in parsed.values() for node, i in cal.consumers):
        raise UserError(f"{source}: converting opset {version} to {QDQ_OPSET} changed its nodes; re-quantize at 21")
    return converted


def _check_metadata(recorded: dict[str, CalibrationNode], parsed: dict[str, CalibrationNode], source: str) -> None:
    """Refuse metadata thresholds that do not give the scales the graph actually holds (an edited graph)."""
    for name, cal in parsed.items():
        if cal.qtype not in BITS:
            continue
        stored, graph = recorded[name], cal.quant_params()
        stored.qtype = cal.qtype
        if stored.symmetric != cal.symmetric or not np.allclose(
            stored.quant_params().scale, graph.scale, rtol=1e-4, atol=0
        ):
            raise UserError(
                f"{source}: its '{METADATA_KEY}' metadata disagrees with the scales in the graph at '{name}' "
                f"(edited after autoprec wrote it?); remove that metadata entry to use the graph's scales"
            )


def _zero_point_dtype(q: onnx.NodeProto | None, folded_dtype: np.dtype | None) -> np.dtype:
    """The quantized type of a pair without a zero-point input: the stored weight's, or Q's output_dtype."""
    if folded_dtype is not None:
        return folded_dtype
    attr = next((a.i for a in q.attribute if a.name == "output_dtype"), 0) if q is not None else 0
    return np.dtype(helper.tensor_dtype_to_np_dtype(attr)) if attr else np.dtype(np.uint8)


def _check_format(dtype: np.dtype, dq: onnx.NodeProto, source: str) -> None:
    if dtype in QTYPE_OF_DTYPE or dtype == np.int32:  # int32: a bias, folded to float
        return
    raise UserError(
        f"{source}: Q/DQ pair '{dq.name or dq.output[0]}' quantizes to {dtype} (int4 / float8 / other formats are "
        "not supported); autoprec reads int8/uint8/int16/uint16 Q/DQ: re-quantize to those or pass the float model"
    )


def strip_qdq(model: onnx.ModelProto, source: str = "model") -> tuple[onnx.ModelProto, dict[str, CalibrationNode]]:
    """Remove every Q -> DQ pair (and DQ on a stored integer weight) from a copy of `model`; refuse formats
    other than 8/16-bit integers."""
    stripped = onnx.ModelProto()
    stripped.CopyFrom(model)
    graph = stripped.graph
    inits = {i.name: i for i in graph.initializer}
    producers, consumers = graph_maps(graph)
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
        stored_dtype = _storage_dtype(inits[dq.input[0]]) if folded else None
        if zp_name:
            _check_format(_storage_dtype(inits[zp_name]), dq, source)
            zero_point = numpy_helper.to_array(inits[zp_name])
        else:
            dtype = _zero_point_dtype(q, stored_dtype)
            _check_format(dtype, dq, source)
            zero_point = np.zeros_like(scale, dtype=dtype)
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1) if scale.size > 1 else None
        if folded:
            stored = numpy_helper.to_array(inits[dq.input[0]])
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
        if np.dtype(zero_point.dtype) not in QTYPE_OF_DTYPE or not uses:
            continue  # an int32 bias, or a Q/DQ on a model output: folded to float, never a calibration node
        params = QuantParams(scale.reshape(-1), zero_point.reshape(-1), axis)
        zp64, scale64 = zero_point.astype(np.float64).reshape(-1), scale.astype(np.float64).reshape(-1)
        low, high = (params.qmin - zp64) * scale64, (params.qmax - zp64) * scale64
        symmetric = bool(np.all(zero_point == 0) and np.dtype(zero_point.dtype).kind == "i")
        if symmetric:
            bits = BITS[QTYPE_OF_DTYPE[np.dtype(zero_point.dtype)]]
            high = params.scale.astype(np.float64) * (2 ** (bits - 1) - 1)
            low = -high
        name = dq.name.removesuffix("/DequantizeLinear").removesuffix("_DequantizeLinear") or dq.output[0]
        is_weight = folded or tensor in inits or (tensor in producers and producers[tensor].op_type == "Constant")
        found[name] = CalibrationNode(
            name=name,
            tensor=tensor,
            consumers=[(n.name, i) for n, i in uses],
            tensor_type=WEIGHT if is_weight else FEATURE,
            qtype=QTYPE_OF_DTYPE[np.dtype(zero_point.dtype)],
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
    _drop_unused(graph)
    name_nodes(graph)
    return stripped, found


def float16_nodes(model: onnx.ModelProto) -> dict[str, CalibrationNode]:
    """Strip the float16 round trips of `model` (in place) into float16 calibration nodes. Their float
    ranges come from the weight's values, or (features) are +-65504 until autoprec's metadata says better."""
    inits = {i.name: i for i in model.graph.initializer}
    found = {}
    for name, (tensor, uses) in strip_float16(model.graph).items():
        bound = np.float64(FLOAT16_MAX)
        if tensor in inits:
            bound = np.float64(np.max(np.abs(numpy_helper.to_array(inits[tensor])), initial=0.0))
        found[name] = CalibrationNode(
            name, tensor, uses, WEIGHT if tensor in inits else FEATURE, "float16", -bound, bound
        )
    _drop_unused(model.graph)
    return found


def _drop_unused(graph: onnx.GraphProto) -> None:
    used = {name for n in graph.node for name in n.input}
    unused = [i for i in graph.initializer if i.name not in used and i.name not in {g.name for g in graph.input}]
    for init in unused:
        graph.initializer.remove(init)


def _storage_dtype(init: onnx.TensorProto) -> np.dtype:
    """The numpy dtype of an initializer, by its declared element type (int4/float8 have no plain numpy type)."""
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(init.data_type))
    except (KeyError, TypeError, ValueError):
        return np.dtype(object)


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
