"""Issue 12: where onnxruntime's session creation of one candidate goes (the part of a candidate's cost that
the static QDQ run does not pay).

    python -m benchmarks.session_creation [--models layout,ocr_det] [--repeats 7] [--phases]

The setup of benchmarks/performance.py. Per model, a random mix (half the units raised), interleaved, median:
session creation at each graph optimization level (ORT_DISABLE_ALL .. ORT_ENABLE_ALL; only ALL is bit-exact
with the export) for the candidate's static QDQ graph and for the float graph (same weights in memory, no Q/DQ),
with node and initializer counts. `--phases`: one creation with onnxruntime's verbose log, its timestamps
summed per phase (verbose logging slows creation; read the shares, not the milliseconds).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autoprec.evaluate import session_options  # noqa: E402
from benchmarks.candidate_cost import timed  # noqa: E402
from benchmarks.common import MODELS, random_assignments  # noqa: E402
from benchmarks.performance import prepare  # noqa: E402

LEVELS = ("ORT_DISABLE_ALL", "ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_ALL")
PHASES = (  # (phase, the log line that ends it), in the order onnxruntime logs them
    ("model load (proto -> graph)", "Applying graph transformer"),
    ("graph transforms", "CreateGraphPartitioner"),
    ("partitioning, kernels, placement", "SaveInitializedTensors"),
    ("initializers, prepacking", "Done saving initialized tensors"),
    ("allocation planning, the rest", None),
)


def candidate(name: str, out: Path):
    """The simulator and a random mix of demo model `name` (half of its units raised)."""
    from autoprec.engine.baselines import baseline_assignments
    from autoprec.engine.units import search_units
    from autoprec.evaluate import EvalSpec, Evaluator
    from autoprec.hardware import get_profile

    workdir, data = prepare(name, out / name)
    evaluator = Evaluator(EvalSpec(str(workdir / "calibrated_model.onnx"), str(data)))
    profile = get_profile("generic")
    base = baseline_assignments(evaluator.model, profile)
    mix = random_assignments(search_units(evaluator.model, profile), base["all-int8"], 1, 0.5, seed=3)[0]
    return evaluator.simulator, mix


def creation(simulator, assignment, repeats: int) -> dict:
    """Median creation time per optimization level of `assignment`'s graph (None: the float graph)."""
    import onnxruntime as ort

    built = simulator.build(assignment)
    proto = built.proto.SerializeToString()
    used = {i.name for i in built.proto.graph.initializer}
    names = [n for n in built.in_memory if n in used]
    values = [simulator._value(n, built.in_memory[n]) for n in names]
    times: dict[str, list[float]] = {level: [] for level in LEVELS}
    for _ in range(repeats):
        for level in LEVELS:
            options = session_options(1)
            options.add_external_initializers(names, values)
            options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
            times[level].append(
                timed(lambda o=options: ort.InferenceSession(proto, o, providers=["CPUExecutionProvider"]))
            )
    graph = built.proto.graph
    return {"nodes": len(graph.node), "initializers": len(graph.initializer), "proto_bytes": len(proto),
            **{level: statistics.median(v) for level, v in times.items()}}  # fmt: skip


def verbose_creation(name: str, out: Path) -> None:
    """Create the candidate's session with onnxruntime's verbose log on stderr."""
    import onnxruntime as ort

    simulator, mix = candidate(name, out)
    built = simulator.build(mix)
    used = {i.name for i in built.proto.graph.initializer}
    names = [n for n in built.in_memory if n in used]
    options = session_options(1)
    options.add_external_initializers(names, [simulator._value(n, built.in_memory[n]) for n in names])
    options.log_severity_level, options.log_verbosity_level = 0, 0
    ort.InferenceSession(built.proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def phases(name: str, out: Path) -> dict[str, float]:
    """One verbose-logged creation of the candidate in a fresh process, milliseconds per phase."""
    code = f"import pathlib, benchmarks.session_creation as m; m.verbose_creation({name!r}, pathlib.Path({str(out)!r}))"
    root = Path(__file__).resolve().parent.parent
    log = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root).stderr
    stamps = [(datetime.fromisoformat(m[1]), line) for line in log.splitlines()
              if (m := re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6})", line))]  # fmt: skip
    start = next(k for k, (_, line) in enumerate(stamps) if "ConstructorCommon" in line)
    result, k = {}, start
    for phase, end in PHASES:
        stop = next((j for j in range(k, len(stamps)) if end and end in stamps[j][1]), len(stamps) - 1)
        result[phase] = (stamps[stop][0] - stamps[k][0]).total_seconds() * 1000
        k = stop
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS[:2]))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--phases", action="store_true")
    parser.add_argument("--out", default="/tmp/autoprec-performance")
    args = parser.parse_args()
    out = Path(args.out)
    print("| model | graph | nodes | initializers | proto | " + " | ".join(LEVELS) + " |")
    print("|---|---|---|---|---|" + "---|" * len(LEVELS))
    for name in args.models.split(","):
        simulator, mix = candidate(name, out)
        for label, assignment in (("candidate (static QDQ)", mix), ("float", None)):
            c = creation(simulator, assignment, args.repeats)
            levels = " | ".join(f"{1000 * c[level]:.0f} ms" for level in LEVELS)
            size = f"{c['proto_bytes'] / 1e6:.2f} MB"
            print(f"| {name} | {label} | {c['nodes']} | {c['initializers']} | {size} | {levels} |")
        if args.phases:
            shares = phases(name, out)
            total = sum(shares.values())
            print("  phases (verbose log): " + ", ".join(f"{p} {100 * v / total:.0f}%" for p, v in shares.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
