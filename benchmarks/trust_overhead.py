"""What the trust checks cost (issue 9 part A), per demo model, 8 samples:

- `float`: the float model as a plain onnxruntime session (1 thread), 8 samples: the reference unit;
- `evaluation`: one candidate (all-int8) through the Evaluator (session build + run + metrics);
- `export check`: the end-of-search re-score of a winner on its exported QDQ model
  (`autoprec.engine.verify.check_exported`'s work: `score_exported`), paid once per search;
- `preflight`: the float references every Evaluator now computes at construction (each sample must run);
- `off fast path`: weights the simulator renders as real Q/DQ (shared by several consumers, behind a
  Constant node) instead of fake-quantizing in memory.

    python benchmarks/trust_overhead.py [--models vad,magika,layout] [--samples 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import onnxruntime as ort

from autoprec.evaluate import EvalSpec, Evaluator
from autoprec.evaluate.exported import score_exported
from autoprec.evaluate.simulator import session_options
from autoprec.ir import FEATURE
from benchmarks.shared import demo_workdir


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def measure(name: str, samples: int, repeats: int, folder: Path) -> dict[str, float]:
    workdir = demo_workdir(name, samples, folder)
    spec = EvalSpec(str(workdir / "calibrated_model.onnx"), str(workdir / "calibration_data"))
    started = time.perf_counter()
    evaluator = Evaluator(spec)
    construct = time.perf_counter() - started
    inputs = [evaluator.sample(i) for i in range(evaluator.num_samples)]
    float_proto = evaluator.model.to_onnx({n: "float32" for n in evaluator.model.calibration}).SerializeToString()
    session = ort.InferenceSession(float_proto, session_options(1), providers=["CPUExecutionProvider"])
    int8 = {n: "int8" for n in evaluator.model.calibration}
    weights = [c for c in evaluator.model.calibration.values() if c.tensor_type != FEATURE]
    return {
        "float": best_of(repeats, lambda: [session.run(None, s) for s in inputs]),
        "evaluation": best_of(repeats, lambda: evaluator.evaluate(int8)),
        "export check": best_of(repeats, lambda: score_exported(evaluator, int8)),
        "construct": construct,
        "off fast path": sum(evaluator.simulator._weights.get(c.tensor) is not c for c in weights),
        "weights": len(weights),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="vad,magika,layout")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    print("| model | float (ms) | evaluation (ms) | export check (ms) | check / float | check / evaluation | "
          "Evaluator construction incl. preflight (ms) | weights off the fast path |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            m = measure(name, args.samples, args.repeats, Path(tmp) / name)
            print(
                f"| {name} | {m['float'] * 1e3:.0f} | {m['evaluation'] * 1e3:.0f} | {m['export check'] * 1e3:.0f} | "
                f"{m['export check'] / m['float']:.2f}x | {m['export check'] / m['evaluation']:.2f}x | "
                f"{m['construct'] * 1e3:.0f} | {m['off fast path']} of {m['weights']} |"
            )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
