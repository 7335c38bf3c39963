"""Evaluation: assignment -> per-output, per-sample scores against the float model.

- `simulator`: the onnxruntime session of an assignment (the static QDQ graph it exports as);
- `evaluator`: float references cached once, samples and candidates spread over worker processes;
- `scores`, `metrics`: HMCT's similarity metrics per output and sample; `task`: user task metrics.
"""

from autoprec.evaluate.evaluator import EvalSpec, Evaluator
from autoprec.evaluate.scores import Scores
from autoprec.evaluate.simulator import Simulator, session_options

__all__ = ["EvalSpec", "Evaluator", "Scores", "Simulator", "session_options"]
