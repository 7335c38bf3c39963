"""Baselines: float, all-int8, all-int16 (what the profile allows), real-int16 (the ceiling) and, when the
profile offers float16, all-float16 (every node float16 where allowed, else as in all-int16)."""

from __future__ import annotations

from autoprec.hardware import HardwareProfile
from autoprec.ir import CalibratedModel


def baseline_assignments(model: CalibratedModel, profile: HardwareProfile) -> dict[str, dict[str, str]]:
    """The reference assignments of a model under a profile (all-float16 only where the profile allows it)."""
    names = model.calibration
    baselines = {
        "all-int8": {n: "int8" for n in names},
        "all-int16": {n: "int16" if profile.can_raise(model, c) else "int8" for n, c in names.items()},
        "real-int16": {n: "int8" if c.folded else "int16" for n, c in names.items()},
    }
    half = {n for n, c in names.items() if "float16" in profile.allowed(model, c)}
    if half:
        baselines["all-float16"] = {n: "float16" if n in half else q for n, q in baselines["all-int16"].items()}
    return baselines
