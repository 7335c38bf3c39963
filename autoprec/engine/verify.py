"""The last check of every search: the winner re-scored on its exported QDQ model must score what the
simulation said (the numbers printed are the numbers the exported model gives)."""

from __future__ import annotations

import math

from autoprec.engine.state import Candidate, SearchState
from autoprec.errors import InternalError
from autoprec.evaluate import session_options
from autoprec.evaluate.exported import score_exported
from autoprec.ir.deploy import deploy_onnx

RELATIVE_TOLERANCE = 1e-6  # beyond rounding: the simulation is meant to be bit-exact with the export


def check_exported(state: SearchState, candidate: Candidate) -> dict[str, dict]:
    """Per target output: {"metric", "simulated", "exported"}; raises InternalError if they differ.

    The task pseudo-output (a user function of all outputs) is not re-run: its inputs are the outputs
    checked here."""
    runtime = state.evaluator.spec.runtime  # ort-default: the deployable file in onnxruntime's default session
    deployed = deploy_onnx(state.evaluator.model, candidate.assignment) if runtime != "as-searched" else None
    exported = score_exported(
        state.evaluator, candidate.assignment, state.search_indices, options=session_options(1, runtime), model=deployed
    )  # the samples its scores are of (without the held-out ones)
    report = {}
    for target in state.target.outputs:
        if target.output not in exported.values:
            continue
        simulated, actual = target.value(candidate.scores), target.value(exported)
        report[target.output] = {"metric": target.metric, "simulated": simulated, "exported": actual}
        if not same_score(simulated, actual):
            raise InternalError(
                f"the exported model of candidate {candidate.index} scores {actual!r} {target.metric} on "
                f"'{target.output}' but its simulation scored {simulated!r}; please report this bug"
            )
    return report


def same_score(a: float, b: float) -> bool:
    """Equal up to rounding (both NaN counts as equal: both fail)."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or abs(a - b) <= RELATIVE_TOLERANCE * max(abs(a), abs(b))
