"""QDQ export: a `CalibratedModel` at an assignment -> a static QDQ ONNX model (opset 21).

Every calibration node at int8/int16 becomes a QuantizeLinear -> DequantizeLinear pair in front of
the inputs it feeds; float32 leaves the tensor alone; float16 becomes a saturating float16 round trip
(`autoprec.ir.float16`); "ec" adds the error-compensation rewrite
(`autoprec.ir.ec`). The calibration records (thresholds, qtypes, settings) ride along in the model's
metadata, so `autoprec.ir.qdq_import` reads them back exactly.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np
import onnx

from autoprec.errors import UserError
from autoprec.ir.ec import qdq_nodes, residual_nodes, split_nodes
from autoprec.ir.float16 import float16_nodes
from autoprec.ir.records import ASSIGNABLE, EC, METADATA_KEY, CalibrationNode, parse_qtype

if TYPE_CHECKING:
    from autoprec.ir.model import CalibratedModel


def to_onnx(cm: CalibratedModel, assignment: dict[str, str] | None = None, metadata: bool = True) -> onnx.ModelProto:
    """A static QDQ model with each calibration node at its qtype (or `assignment`'s).

    An "ec" node renders as its int8 Q/DQ plus, for each op it feeds, a copy `<op>_split_low` of the
    op on Q/DQ(residual) (weights: a residual initializer; features: Sub(x, DQ8(Q8(x)))) and an Add
    `<op>_split_add` of both results, which keeps the op's original output name. `metadata=False` leaves out
    the calibration records (a simulation does not read them back; they take half the time on big models)."""
    qtypes = {**cm.assignment(), **(assignment or {})}
    for name, qtype in qtypes.items():
        if not cm.calibration[name].accepts(qtype):
            raise UserError(f"{name}: unknown qtype '{qtype}'; use one of {', '.join(ASSIGNABLE)} (or int8@<range>)")
        cm.check_ec(cm.calibration[name], qtype)
    model = onnx.ModelProto()
    model.CopyFrom(cm.model)
    graph = model.graph
    by_consumer: dict[str, list[CalibrationNode]] = defaultdict(list)
    for name, cal in cm.calibration.items():
        if qtypes[name] != "float32":
            by_consumer[cal.consumers[0][0]].append(cal)
    rewired = {c: cal for cal in cm.calibration.values() if qtypes[cal.name] != "float32" for c in cal.consumers}
    compensated = {c: cal for cal in cm.calibration.values() if qtypes[cal.name] == EC for c in cal.consumers}
    nodes = []
    for node in graph.node:
        for cal in by_consumer.get(node.name, []):
            qtype = qtypes[cal.name]
            if qtype == "float16":
                nodes.extend(float16_nodes(cal.name, cal.tensor, graph))
                continue
            nodes.extend(qdq_nodes(cal.name, cal.tensor, cal.quant_params("int8" if qtype == EC else qtype), graph))
            if qtype == EC:
                nodes.extend(residual_nodes(cm, cal, graph))
        new = onnx.NodeProto()
        new.CopyFrom(node)
        for i in range(len(new.input)):
            if (node.name, i) in rewired:
                new.input[i] = f"{rewired[(node.name, i)].name}/dequantized"
        split = {i: cal for i in range(len(new.input)) if (cal := compensated.get((node.name, i))) is not None}
        nodes.extend(split_nodes(new, split) if split else [new])
    del graph.node[:]
    graph.node.extend(nodes)
    if not metadata:
        return model
    record = {"settings": cm.settings, "nodes": {k: v.to_json() for k, v in cm.calibration.items()}}
    for cal in cm.calibration.values():  # a chosen range ("int8@kl") is exported as the node's own thresholds
        entry, (base, label) = record["nodes"][cal.name], parse_qtype(qtypes[cal.name])
        entry["qtype"] = base
        if label is not None:
            entry["rmin"], entry["rmax"] = (np.asarray(v).tolist() for v in cal.range_of(qtypes[cal.name]))
    _set_metadata(model, METADATA_KEY, json.dumps(record))
    return model


def _set_metadata(model: onnx.ModelProto, key: str, value: str) -> None:
    for prop in model.metadata_props:
        if prop.key == key:
            prop.value = value
            return
    model.metadata_props.add(key=key, value=value)
