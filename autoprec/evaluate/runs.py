"""Running a model on one sample, with onnxruntime's failures on the user's data as one-line errors."""

from __future__ import annotations

import re

import numpy as np
import onnxruntime as ort

from autoprec.data import Sample
from autoprec.errors import UserError


def run_sample(session: ort.InferenceSession, outputs: list[str], sample: Sample, index: int) -> list[np.ndarray]:
    """`session.run` on sample `index`; onnxruntime refusing the sample is a UserError naming it."""
    try:
        return session.run(outputs, sample)
    except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidArgument, ...)
        if not type(exc).__module__.startswith("onnxruntime"):
            raise
        raise UserError(
            f"sample {index}: onnxruntime cannot run the float model on it ({ort_message(exc)}); check that sample"
        ) from exc


def ort_message(exc: Exception) -> str:
    """onnxruntime's first message line, with the failing node and without its source-file prefix."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    node = re.search(r"running (\w+) node\. Name:'([^']*)'", text)
    message = text.split("Status Message: ", 1)[-1]
    message = re.sub(r"^/\S+:\d+ .*? was false\. ", "", message)  # the C++ assertion behind the message
    return (f"{node[1]} node '{node[2]}': " if node else "") + message[:300]
