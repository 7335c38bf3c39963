"""Baselines: float, all-int8, all-int16 (what the profile allows) and real-int16 (the ceiling)."""

from __future__ import annotations

from autoprec.hardware import HardwareProfile
from autoprec.ir import CalibratedModel


def baseline_assignments(model: CalibratedModel, profile: HardwareProfile) -> dict[str, dict[str, str]]:
    """The three reference assignments of a model under a profile."""
    names = model.calibration
    return {
        "all-int8": {n: "int8" for n in names},
        "all-int16": {n: "int16" if profile.can_raise(model, c) else "int8" for n, c in names.items()},
        "real-int16": {n: "int8" if c.folded else "int16" for n, c in names.items()},
    }
