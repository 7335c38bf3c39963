"""Re-scoring on the exported model: run `CalibratedModel.to_onnx(assignment)` as a plain onnxruntime
session and score it against the same float references, so a printed score can be checked against
what the deployed file computes (`session_options()` = as searched; `ort.SessionOptions()` = as
onnxruntime deploys it by default, with its integer-kernel QDQ fusion)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

from autoprec.evaluate.evaluator import Assignment, Evaluator
from autoprec.evaluate.metrics import compare
from autoprec.evaluate.scores import Scores
from autoprec.evaluate.simulator import session_options


def score_exported(
    evaluator: Evaluator,
    assignment: Assignment,
    indices: list[int] | None = None,
    options: ort.SessionOptions | None = None,
    model: onnx.ModelProto | None = None,
) -> Scores:
    """Scores of `assignment` run as its exported static QDQ model (default: the search's session options);
    `model`: score this already exported model of `assignment` instead."""
    indices = list(range(evaluator.num_samples)) if indices is None else list(indices)
    proto = (model or evaluator.model.to_onnx(assignment)).SerializeToString()
    session = ort.InferenceSession(proto, options or session_options(1), providers=["CPUExecutionProvider"])
    values: dict[str, dict[str, list[float]]] = {o: {} for o in evaluator.outputs}
    for i, reference in zip(indices, evaluator.references(indices)):
        for output, r, q in zip(evaluator.outputs, reference, session.run(evaluator.outputs, evaluator.sample(i))):
            for metric, value in compare(r, q).items():
                values[output].setdefault(metric, []).append(value)
    return Scores({o: {m: np.asarray(v) for m, v in d.items()} for o, d in values.items()})
