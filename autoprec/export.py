"""`autoprec export`: the winner as a standard QDQ ONNX model, checked, then scored twice by plain onnxruntime.

    from autoprec.export import export_model, verify_export
    proto = export_model(evaluator, assignment, "model_qdq.onnx")
    check = verify_export(evaluator, assignment, proto, target)   # as searched, and as ORT CPU deploys it

"As searched" runs the file with `session.disable_quant_qdq=1` (the search's configuration, so its scores
equal the search's); "ort default" runs it with default session options, where onnxruntime fuses 8-bit
Q/DQ into integer kernels whose arithmetic differs (u8s8 products can saturate on CPUs without VNNI).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnxruntime as ort

from autoprec.engine.target import Target
from autoprec.errors import UserError
from autoprec.evaluate import Evaluator, Scores, session_options
from autoprec.evaluate.exported import score_exported
from autoprec.ir.deploy import deploy_onnx
from autoprec.model_io import check_output_file, save_model

RUNTIME_FIX = (
    "onnxruntime's default CPU session fuses 8-bit Q/DQ into integer kernels that compute differently; "
    "to deploy this model on it: search again with `--runtime ort-default` (every candidate scored as that "
    "runtime runs it, so the winner keeps int16 where the fused int8 kernels lose accuracy), or create the "
    "session with session.disable_quant_qdq=1 (the searched arithmetic, float kernels, slower)"
)


@dataclass
class ExportCheck:
    """Per-output scores of the exported file in both onnxruntime configurations, against the target."""

    target: Target
    as_searched: Scores
    ort_default: Scores

    def rows(self) -> dict[str, dict]:
        """output -> target text and both values (and whether each meets its target)."""
        return {
            t.output: {
                "target": t.describe(),
                "as_searched": t.value(self.as_searched),
                "ort_default": t.value(self.ort_default),
                "as_searched_meets": t.gap(self.as_searched) <= 0,
                "ort_default_meets": t.gap(self.ort_default) <= 0,
            }
            for t in self.target.outputs
        }

    @property
    def deployed_meets(self) -> bool:
        return self.target.passes(self.ort_default)

    @property
    def searched_meets(self) -> bool:
        return self.target.passes(self.as_searched)


def export_model(
    evaluator: Evaluator, assignment: dict[str, str], path: str | os.PathLike, ms_domain: bool = False,
    force: bool = False,
) -> onnx.ModelProto:  # fmt: skip
    """Write the QDQ model of `assignment` to `path` (never over an existing file unless `force`), checked
    by `onnx.checker`; int16 via opset 21, or with `ms_domain` via com.microsoft Q/DQ at a lower opset."""
    path = Path(path)
    check_output_file(path, force)
    if path.suffix != ".onnx":
        raise UserError(f"-o {path}: name the exported model file with an .onnx suffix")
    proto = deploy_onnx(evaluator.model, assignment, ms_domain=ms_domain)
    if not ms_domain:  # the checker knows no com.microsoft schemas; that model is checked by onnxruntime below
        onnx.checker.check_model(proto, full_check=True)
    else:
        onnx.checker.check_model(proto)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(proto, path)
    return proto


def verify_export(
    evaluator: Evaluator, assignment: dict[str, str], proto: onnx.ModelProto, target: Target
) -> ExportCheck:
    """Score the exported model on every sample with plain onnxruntime: as searched, and with default options."""
    searched = score_exported(evaluator, assignment, options=session_options(1), model=proto)
    deployed = score_exported(evaluator, assignment, options=ort.SessionOptions(), model=proto)
    return ExportCheck(target, searched, deployed)
