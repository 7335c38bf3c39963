"""HMCT form vs autoprec's QDQ form of the same calibrated demo model: load, one candidate, export.

    python -m benchmarks.hmct [vad magika layout] [--samples 4] [--repeats 5]

Each model is calibrated (QDQ), converted with `autoprec export --format hmct`, and both forms are
loaded and evaluated on the same all-int8 candidate (the outputs must be bit-identical). Times are
medians over repeats, in ms; "x float" is relative to a plain onnxruntime run of the float model on
the same samples (one intra-op thread, like the simulator).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from autoprec.cli.export_hmct import export_hmct
from autoprec.data import load_samples, model_inputs
from autoprec.demo import fetch_model
from autoprec.evaluate.simulator import Simulator, session_options
from autoprec.hardware import get_profile
from autoprec.ir import CalibratedModel
from benchmarks.shared import demo_workdir


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(name: str, samples: int, repeats: int, folder: Path) -> dict:
    workdir = demo_workdir(name, samples, folder)
    qdq_path, hmct_path = workdir / "calibrated_model.onnx", folder / "hmct" / "calibrated_model.onnx"
    row = {"export_ms": _median_ms(lambda: export_hmct(qdq_path, hmct_path, None, get_profile("generic"), True), 1)}
    models = {}
    for form, path in (("qdq", qdq_path), ("hmct", hmct_path)):
        row[f"load_{form}_ms"] = _median_ms(lambda p=path: CalibratedModel.load(p), repeats)
        models[form] = CalibratedModel.load(path)
    data = load_samples(workdir / "calibration_data", model_inputs(models["qdq"].model))
    outputs = [o.name for o in models["qdq"].model.graph.output]
    results = {}
    for form, model in models.items():
        simulator, assignment = Simulator(model), {n: "int8" for n in model.calibration}

        def candidate(simulator=simulator, assignment=assignment) -> list:
            session = simulator.session(assignment)
            return [session.run(outputs, s) for s in data]

        results[form] = candidate()
        row[f"candidate_{form}_ms"] = _median_ms(candidate, repeats)
    row["bit_identical"] = all(
        np.array_equal(a, b) for sa, sb in zip(results["qdq"], results["hmct"]) for a, b in zip(sa, sb)
    )
    float_session = ort.InferenceSession(str(fetch_model(name)), session_options(), providers=["CPUExecutionProvider"])
    row["float_ms"] = _median_ms(lambda: [float_session.run(outputs, s) for s in data], repeats)
    row["nodes"] = len(models["hmct"].calibration)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=["vad", "magika", "layout"])
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print("| model | calibration nodes | export (ms) | load QDQ / HMCT (ms) | one candidate QDQ / HMCT (ms) "
          "| x float (HMCT) | outputs bit-identical |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            r = measure(name, args.samples, args.repeats, Path(tmp))
        print(f"| {name} | {r['nodes']} | {r['export_ms']:.0f} | {r['load_qdq_ms']:.0f} / {r['load_hmct_ms']:.0f} "
              f"| {r['candidate_qdq_ms']:.0f} / {r['candidate_hmct_ms']:.0f} "
              f"| {r['candidate_hmct_ms'] / r['float_ms']:.2f} | {r['bit_identical']} |")  # fmt: skip


if __name__ == "__main__":
    main()
