"""Intermediate tensors of a calibrated model at an assignment: added as extra graph outputs, one run."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

from autoprec.data import Sample
from autoprec.evaluate import session_options
from autoprec.ir import CalibratedModel

FLOAT = "float32"


def float_assignment(model: CalibratedModel) -> dict[str, str]:
    return {name: FLOAT for name in model.calibration}


def tensor_session(
    model: CalibratedModel, assignment: dict[str, str] | None, tensors: list[str]
) -> ort.InferenceSession:
    """A session of the QDQ model of `assignment` (None: float), as searched, that also outputs `tensors`."""
    proto = model.to_onnx(assignment or float_assignment(model))
    present = {o.name for o in proto.graph.output}
    proto.graph.output.extend(onnx.ValueInfoProto(name=t) for t in dict.fromkeys(tensors) if t not in present)
    options = session_options(1)
    options.enable_cpu_mem_arena = False  # an arena per session would keep every intermediate's peak allocated
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def tensor_values(
    model: CalibratedModel, assignment: dict[str, str] | None, samples: list[Sample], tensors: list[str]
) -> dict[str, list[np.ndarray]]:
    """tensor -> its value on each sample (keep `tensors` few: every value is held)."""
    session = tensor_session(model, assignment, tensors)
    values: dict[str, list[np.ndarray]] = {t: [] for t in tensors}
    for sample in samples:
        for name, value in zip(tensors, session.run(tensors, sample)):
            values[name].append(value)
    return values


def node_outputs(model: CalibratedModel) -> list[tuple[str, str]]:
    """(normal node, its first output tensor) in graph order: the points of a cumulative error curve."""
    return [(n.name, n.output[0]) for n in model.model.graph.node if n.output and n.op_type != "Constant"]
