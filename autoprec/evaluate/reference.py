"""The float reference of a foreign QDQ model: with `--float-model ORIGINAL.onnx`, references come from the
original float model instead of the float graph reconstructed from the QDQ model (which lacks activations a
quantizer folded into its QuantizeLinear nodes, e.g. onnxruntime's Relu/Clip removal)."""

from __future__ import annotations

import onnx
import onnxruntime as ort

from autoprec.data import model_inputs
from autoprec.errors import UserError
from autoprec.evaluate.simulator import session_options
from autoprec.ir import CalibratedModel
from autoprec.model_io import load_model


def reconstruction_note(model: CalibratedModel) -> str | None:
    """One line saying why the float graph inside a foreign QDQ model may not be its true float reference."""
    restored = model.settings.get("restored_relus", [])
    folded = sum(c.folded for c in model.calibration.values())
    if not restored and not folded:
        return None
    parts = [f"restored {len(restored)} Relu(s) the quantizer folded into QuantizeLinear"] if restored else []
    parts += [f"{folded} weight(s) are stored quantized, so their float values are lost"] if folded else []
    return (
        f"autoprec: the float reference is rebuilt from the QDQ graph ({'; '.join(parts)}); "
        "pass --float-model ORIGINAL.onnx to compare against the true float model"
    )


def reference_session(path: str, quantized: onnx.ModelProto) -> ort.InferenceSession:
    """An onnxruntime session of the float model at `path`, checked to have the quantized model's inputs and
    outputs (same names, same input types)."""
    original = load_model(path)
    want_inputs = {(s.name, s.dtype) for s in model_inputs(quantized)}
    have_inputs = {(s.name, s.dtype) for s in model_inputs(original)}
    want_outputs = {o.name for o in quantized.graph.output}
    missing = sorted(want_outputs - {o.name for o in original.graph.output})
    if want_inputs != have_inputs or missing:
        what = f"outputs {missing}" if missing else f"inputs {sorted(n for n, _ in want_inputs ^ have_inputs)}"
        raise UserError(f"--float-model {path}: its {what} differ from the quantized model's; pass its float original")
    try:
        return ort.InferenceSession(original.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise UserError(f"--float-model {path}: onnxruntime cannot run it ({str(exc).splitlines()[0][:200]})") from exc
