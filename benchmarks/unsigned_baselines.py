"""Issue 10: all-int8 and all-int16 on a chip without asymmetric quantization, signed-only (`symmetric-signed`)
vs with unsigned int8/int16 on never-negative tensors (`symmetric`).

    nice -n 10 python -m benchmarks.unsigned_baselines [--models layout,magika,vad] [--methods max,auto]

Per model: 8 calibration samples (`--method auto` with `--start best`: the best all-int8's ranges), the baselines
scored on the first 4 (vad, magika: 8); prints one markdown row per (model, method, profile): the worst output's
mean cosine at all-int8 and at all-int16, and how many of the feature calibration nodes are unsigned.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from autoprec.calibrate import CalibrationSettings
from autoprec.engine.baselines import baseline_assignments
from autoprec.evaluate import EvalSpec, Evaluator
from autoprec.hardware import get_profile
from benchmarks.common import COSINE, SEARCH_SAMPLES
from benchmarks.shared import demo_workdir

PROFILES = ("symmetric-signed", "symmetric")


def row(name: str, method: str, profile: str, folder: Path) -> list:
    workdir = demo_workdir(
        name, 8, folder / f"{name}-{method}-{profile}", CalibrationSettings(method, profile=profile, start="best")
    )
    spec = EvalSpec(str(workdir / "calibrated_model.onnx"), str(workdir / "calibration_data"), SEARCH_SAMPLES[name])
    evaluator = Evaluator(spec)
    model = evaluator.model
    baselines = baseline_assignments(model, get_profile(profile))
    worst = []
    for baseline in ("all-int8", "all-int16"):
        scores = evaluator.evaluate(baselines[baseline])
        worst.append(round(min(float(scores.values[o][COSINE].mean()) for o in evaluator.outputs), 4))
    features = [c for c in model.calibration.values() if c.tensor_type == "feature"]
    unsigned = sum(not c.symmetric for c in features)
    return [name, model.settings["method"], profile, *worst, f"{unsigned} / {len(features)}"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="layout,magika,vad")
    parser.add_argument("--methods", default="max,auto")
    parser.add_argument("--out", default=tempfile.gettempdir() + "/autoprec-unsigned")
    args = parser.parse_args()
    print("| model | method | profile | all-int8 worst | all-int16 worst | unsigned feature nodes |")
    print("|---|---|---|---:|---:|---:|")
    for name in args.models.split(","):
        for method in args.methods.split(","):
            for profile in PROFILES:
                print("| " + " | ".join(str(v) for v in row(name, method, profile, Path(args.out))) + " |", flush=True)


if __name__ == "__main__":
    main()
