"""The last proto a simulator built, patched into the next one when only Q/DQ parameters change.

A search's candidates mostly differ in which calibration nodes are int8 or int16 (or another int8 range):
their static QDQ graphs have the same nodes, and differ only in the scale and zero-point initializers of those
nodes. Patching those initializers in a copy of the last proto gives the same proto as
`CalibratedModel.to_onnx` (tested byte for byte) in a few ms instead of tens (it re-renders every node).
"""

from __future__ import annotations

import threading

import onnx
from onnx import numpy_helper

from autoprec.ir import CalibratedModel
from autoprec.ir.records import BITS, QuantParams, parse_qtype


def _kind(qtype: str) -> str:
    """What decides the nodes a calibration node renders as: any integer qtype is one Q/DQ pair."""
    base, _ = parse_qtype(qtype)
    return "qdq" if base in BITS else qtype


class ProtoCache:
    """Static QDQ protos of one model (`to_onnx(rendered, metadata=False)`), patched from the last one kept."""

    def __init__(self, model: CalibratedModel):
        self.model = model
        self._last: tuple[dict[str, str], onnx.ModelProto] | None = None
        self._lock = threading.Lock()
        self.patched = 0  # protos made by patching the last one

    def proto(self, rendered: dict[str, str]) -> onnx.ModelProto:
        """The static QDQ proto of `rendered` (calibration node -> qtype): a fresh copy the caller may edit."""
        with self._lock:
            last = self._last
        proto = self._patch(*last, rendered) if last is not None else None
        if proto is None:
            return self.model.to_onnx(rendered, metadata=False)
        self.patched += 1
        return proto

    def keep(self, rendered: dict[str, str], proto: onnx.ModelProto) -> None:
        """Remember `proto` (as its caller finished it; not edited afterwards) as the base of the next patch."""
        with self._lock:
            self._last = (dict(rendered), proto)

    def _patch(self, before: dict[str, str], base: onnx.ModelProto, rendered: dict[str, str]) -> onnx.ModelProto | None:
        if before.keys() != rendered.keys() or any(_kind(before[n]) != _kind(q) for n, q in rendered.items()):
            return None
        changed = [n for n, q in rendered.items() if q != before[n]]
        if not all(self.model.calibration[n].accepts(rendered[n]) for n in changed):
            return None  # to_onnx names the problem
        proto = onnx.ModelProto()
        proto.CopyFrom(base)
        index = {i.name: i for i in proto.graph.initializer}
        for name in changed:
            params = self.model.calibration[name].quant_params(rendered[name])
            names = (f"{name}/scale", f"{name}/zero_point")
            if type(params) is not QuantParams or not all(n in index for n in names):
                return None  # e.g. a grouped HMCT weight, rendered with other nodes
            for tensor, value in zip(names, (params.scale, params.zero_point)):
                index[tensor].CopyFrom(numpy_helper.from_array(value, tensor))
        return proto
