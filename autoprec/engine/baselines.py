"""Baselines: float, all-int8, all-int16 (what the profile allows), real-int16 (the ceiling), when the
profile offers float16, all-float16 (every node float16 where allowed, else as in all-int16), and, for a
model `calibrate --method auto` gave max ranges, best-int8 (every feature node at the best-scoring method's
range, "int8@kl": the best all-int8; the search still starts from all-int8)."""

from __future__ import annotations

from autoprec.calibration.auto import all_int8
from autoprec.calibration.methods import label
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
    best = model.settings.get("best_int8")  # calibrate --method auto; the model's own ranges are max
    if best and best != label(model.settings["method"], model.settings.get("percentile")):
        baselines["best-int8"] = all_int8(model, best)
    half = {n for n, c in names.items() if "float16" in profile.allowed(model, c)}
    if half:
        baselines["all-float16"] = {n: "float16" if n in half else q for n, q in baselines["all-int16"].items()}
    return baselines
