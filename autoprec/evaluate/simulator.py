"""The simulator: an onnxruntime session for any assignment of one calibrated model.

Each candidate runs as the static QDQ graph it would be exported as, with one fixed onnxruntime
configuration (`session.disable_quant_qdq=1`: no integer-kernel fusion; one intra-op thread per
process). Feature calibration nodes are real Q/DQ nodes (an "ec" feature: the real `_split_low`
rewrite); weights are fake-quantized once per qtype in numpy (bit-exact with onnxruntime's Q/DQ;
an "ec" weight as int8 + int8 residual, equal to the rewrite by linearity) and handed to
onnxruntime in memory, so a session builds in tens of ms and runs as a float-weight graph.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, numpy_helper

from autoprec.ir import EC, FEATURE, CalibratedModel
from autoprec.ir.ec import compensated_weight

Assignment = dict[str, str]
IN_MEMORY_MIN_ELEMENTS = 256  # smaller initializers (shapes, scalars) stay in the proto


def session_options(threads: int = 1) -> ort.SessionOptions:
    """The one session configuration every simulation uses (no integer-kernel QDQ fusion)."""
    options = ort.SessionOptions()
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return options


class Simulator:
    """Builds onnxruntime sessions for assignments of one calibrated model."""

    def __init__(self, model: CalibratedModel, threads: int = 1):
        self.model = model
        self.threads = threads
        self._values: dict[tuple[str, str], ort.OrtValue] = {}
        self._weights = {c.tensor: c for c in model.calibration.values() if c.tensor_type != FEATURE}

    def session(self, assignment: Assignment | None) -> ort.InferenceSession:
        """A session for `assignment` (None: the float model)."""
        qtypes = {**self.model.assignment(), **(assignment or {})} if assignment is not None else {}
        features = {
            name: (qtypes[name] if cal.tensor_type == FEATURE and assignment is not None else "float32")
            for name, cal in self.model.calibration.items()
        }
        proto = self.model.to_onnx(features)
        names, values = [], []
        for init in proto.graph.initializer:
            if init.data_type != TensorProto.FLOAT or init.name not in self.model.initializers:
                continue  # integer tensors, and the scales to_onnx renders for Q/DQ
            cal = self._weights.get(init.name)
            qtype = qtypes.get(cal.name, "float32") if cal is not None else "float32"
            if _elements(init) < IN_MEMORY_MIN_ELEMENTS:
                if qtype != "float32":  # a small weight stays in the proto, fake-quantized like any other
                    init.CopyFrom(numpy_helper.from_array(self._array(init.name, qtype), init.name))
                continue
            names.append(init.name)
            values.append(self._value(init.name, qtype))
            _mark_in_memory(init)
        options = session_options(self.threads)
        options.add_external_initializers(names, values)
        return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def _array(self, name: str, qtype: str) -> np.ndarray:
        """The weight initializer `name` as fed at `qtype` (fake-quantized; "ec": int8 + int8 residual)."""
        array = numpy_helper.to_array(self.model.initializers[name]).astype(np.float32)
        if qtype == EC:  # equal to the `_split_low` rewrite by linearity: op(x, W8) + op(x, r8) = op(x, W8 + r8)
            return compensated_weight(self.model, self._weights[name].name)
        if qtype != "float32":
            return self._weights[name].quant_params(qtype).fake_quantize(array)
        return array

    def _value(self, name: str, qtype: str) -> ort.OrtValue:
        key = (name, qtype)
        if key not in self._values:
            self._values[key] = ort.OrtValue.ortvalue_from_numpy(np.array(self._array(name, qtype), order="C"))
        return self._values[key]


def _elements(init: onnx.TensorProto) -> int:
    return int(np.prod(init.dims)) if init.dims else 1


def _mark_in_memory(init: onnx.TensorProto) -> None:
    nbytes = _elements(init) * 4
    for name in ("raw_data", "float_data"):
        init.ClearField(name)
    init.data_location = TensorProto.EXTERNAL
    del init.external_data[:]
    for key, value in (("location", "in-memory"), ("offset", "0"), ("length", str(nbytes))):
        init.external_data.add(key=key, value=value)
