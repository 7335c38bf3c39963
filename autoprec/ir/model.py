"""The calibrated model: a float ONNX graph plus its calibration nodes (quantize-dequantize points).

`CalibratedModel` holds the float graph (no Q/DQ) and one `CalibrationNode` record per
quantization point, with HMCT-style lookups (`find_input_calibration`, `find_output_calibration`,
`nodes_of_type`) and edits (`set_qtype`, `set_thresholds`). Reading and writing ONNX lives in
`autoprec.ir.qdq_import` / `autoprec.ir.qdq_export`; `load`, `save` and `to_onnx` are shortcuts to them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from autoprec.errors import UserError
from autoprec.ir.records import ASSIGNABLE, EC, EC_INPUTS, CalibrationNode, graph_maps
from autoprec.model_io import load_model, save_model


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
        self.producers, uses = graph_maps(self.model.graph)
        self.consumers = {tensor: [node for node, _ in pairs] for tensor, pairs in uses.items()}

    # --- loading and saving (autoprec.ir.qdq_import / qdq_export) ------------------------
    @classmethod
    def load(cls, path: str | os.PathLike) -> CalibratedModel:
        """Load a calibrated model: QDQ (autoprec's or any QDQ quantizer's) or HMCT's (HzCalibration nodes)."""
        from autoprec.ir.hmct_import import from_hmct, is_hmct
        from autoprec.ir.qdq_import import from_proto

        proto = load_model(path)
        return (from_hmct if is_hmct(proto) else from_proto)(proto, source=str(path))

    def to_onnx(self, assignment: dict[str, str] | None = None, metadata: bool = True) -> onnx.ModelProto:
        """A static QDQ model with each calibration node at its qtype (or `assignment`'s); `metadata=False`
        leaves the calibration records out."""
        from autoprec.ir.qdq_export import to_onnx

        return to_onnx(self, assignment, metadata)

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
        cal = self._get(name)
        if not cal.accepts(qtype):
            raise UserError(f"unknown qtype '{qtype}'; use one of {', '.join(ASSIGNABLE)} (or int8@<range>)")
        self.check_ec(cal, qtype)
        cal.qtype = qtype

    def set_thresholds(self, name: str, rmin: float | np.ndarray, rmax: float | np.ndarray) -> None:
        """Set a node's own thresholds (its calibrated alternative ranges are dropped: an edit replaces them)."""
        cal = self._get(name)
        cal.rmin, cal.rmax = np.asarray(rmin, dtype=np.float64), np.asarray(rmax, dtype=np.float64)
        cal.alternatives = {}

    def assignment(self) -> dict[str, str]:
        """The current qtype of every calibration node."""
        return {name: cal.qtype for name, cal in self.calibration.items()}

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

    def check_ec(self, cal: CalibrationNode, qtype: str) -> None:
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
