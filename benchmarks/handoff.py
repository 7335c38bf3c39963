"""Hand-off benchmark: a finished search's report, its export, and the exported model's speed and scores.

    python -m benchmarks.handoff work/layout/autoprec_out

For the winner of the search in OUT: time to write report.html; the exported model scored as searched and
with onnxruntime's default session (every sample); and one inference per sample, median over 3 rounds, of
the float model (default session), the export as searched (session.disable_quant_qdq=1) and the export
as onnxruntime deploys it (default session), as ratios to the float model.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import onnxruntime as ort

from autoprec.engine.saved import load_saved
from autoprec.evaluate import EvalSpec, Evaluator, session_options
from autoprec.export import export_model, verify_export
from autoprec.hardware import get_profile
from autoprec.quant_config import from_quant_config
from autoprec.report.html import write_report
from autoprec.report.tensors import float_assignment


def per_sample_seconds(session: ort.InferenceSession, evaluator: Evaluator, rounds: int = 3) -> float:
    """Median over rounds of the mean time of one inference over all samples."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for i in range(evaluator.num_samples):
            session.run(None, evaluator.sample(i))
        times.append((time.perf_counter() - started) / evaluator.num_samples)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="a search folder (autoprec_out)")
    args = parser.parse_args()
    saved = load_saved(args.out)
    evaluator = Evaluator(EvalSpec(saved.result["model"], saved.result["data"], saved.result.get("num_samples")))
    started = time.perf_counter()
    write_report(args.out, evaluator, get_profile(saved.result.get("profile", "generic")))
    report_seconds = time.perf_counter() - started
    assignment = from_quant_config(evaluator.model, json.loads(saved.config_path.read_text()),
                                   get_profile(saved.result.get("profile", "generic")))  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        proto = export_model(evaluator, assignment, Path(tmp) / "model_qdq.onnx")
        check = verify_export(evaluator, assignment, proto, saved.target)
        export_seconds = time.perf_counter() - started
    data = proto.SerializeToString()
    float_model = evaluator.model.to_onnx(float_assignment(evaluator.model)).SerializeToString()
    sessions = {
        "float (default session)": ort.InferenceSession(float_model, providers=["CPUExecutionProvider"]),
        "export as searched": ort.InferenceSession(data, session_options(0), providers=["CPUExecutionProvider"]),
        "export, default session": ort.InferenceSession(data, providers=["CPUExecutionProvider"]),
    }
    timings = {name: per_sample_seconds(s, evaluator) for name, s in sessions.items()}
    base = timings["float (default session)"]
    print(f"report.html {report_seconds:.1f} s; export + both verifications {export_seconds:.1f} s; "
          f"{evaluator.num_samples} samples, {len(data) / 1e6:.2f} MB")  # fmt: skip
    for name, seconds in timings.items():
        print(f"| {name} | {seconds * 1e3:.1f} ms | {seconds / base:.2f}x |")
    winner = saved.result["winner"]["outputs"]
    for output, row in check.rows().items():
        print(f"| {output} | {winner[output]['value']:.6f} | {row['as_searched']:.6f} | {row['ort_default']:.6f} |"
              f" {row['target']} |")  # fmt: skip


if __name__ == "__main__":
    main()
