"""Running a model on one sample, with onnxruntime's failures on the user's data as one-line errors."""

from __future__ import annotations

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
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise UserError(
            f"sample {index}: onnxruntime cannot run the float model on it ({first}); check that sample's data"
        ) from exc
