"""Issue 10 benchmark: the default search (float_fallback and the lattice-aware prune included) on the demo
models, each winner described under the chip cost model and under the old MACs-only cost.

    nice -n 10 python -m benchmarks.float_qtypes --models vad-symmetric,vad-symmetric-signed,vad-asymmetric,vad,magika

Same setup as benchmarks/run.py's search part: 8 calibration samples, the search on the first 4 (layout,
ocr_det) or 8 (vad, magika), budget 50, the generic profile (symmetric activations: the default
calibration), targets of RESULTS.md (vad: 0.99, the issue's). The done-when rows of issue 10: vad-symmetric
(the `symmetric` profile: a chip without asymmetric quantization; `--method auto`, which keeps every
method's int8 range per node for range tuning) and vad-asymmetric (the same with asymmetric activations), at
budget 35. Prints one markdown row per run and writes DIR/<run>.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from autoprec.api import search
from autoprec.calibrate import CalibrationSettings
from autoprec.engine.cost import mac_share_above_int8, op_costs
from autoprec.evaluate.exported import score_exported
from autoprec.ir import base_qtype
from benchmarks.shared import demo_workdir

SEARCH_SAMPLES = {"layout": 4, "ocr_det": 4, "vad": 8, "magika": 8}
TARGETS = {"layout": 0.97, "ocr_det": 0.99, "vad": 0.99, "magika": 0.99}
# run -> (model, profile, calibration, budget); a plain model name: generic profile, default calibration, 50
RUNS = {
    "vad-symmetric": ("vad", "symmetric", CalibrationSettings("auto", profile="symmetric", start="best"), 35),
    "vad-symmetric-signed": (
        "vad",
        "symmetric-signed",
        CalibrationSettings("auto", profile="symmetric-signed", start="best"),
        35,
    ),
    "vad-asymmetric": ("vad", "generic", CalibrationSettings(method="auto", asymmetric=True, start="best"), 35),
    "vad-symmetric-max": ("vad", "symmetric", CalibrationSettings("max", profile="symmetric"), 35),
    "vad-symmetric-signed-max": ("vad", "symmetric-signed", CalibrationSettings("max", profile="symmetric-signed"), 35),
}
COSINE = "cosine-similarity"


def macs_only_cost(state, assignment: dict[str, str]) -> float:
    """The cost before issue 10: MACs (or elements) of the ops fed by every node neither int8 nor float32."""
    ops = op_costs(state.model, state.evaluator.sample(0))
    node = {n: sum(ops[op] for op, _ in c.consumers) for n, c in state.model.calibration.items()}
    full = sum(node[n] for n, q in state.baselines["all-int16"].items() if q != "int8")
    return sum(node[n] for n, q in assignment.items() if base_qtype(q) not in ("int8", "float32")) / (full or 1.0)


def worst(scores, outputs: list[str]) -> float:
    """The worst output's mean cosine, rounded."""
    return round(min(float(scores.values[o][COSINE].mean()) for o in outputs), 5)


def run(run_name: str, folder: Path) -> dict:
    name, profile, settings, budget = RUNS.get(run_name, (run_name, "generic", None, 50))
    workdir = demo_workdir(name, 8, folder / run_name, settings)
    started = time.perf_counter()
    result = search(workdir, out=folder / run_name / "out", target=TARGETS[name], budget=budget, jobs=1,
                    num_samples=SEARCH_SAMPLES[name], profile=profile)  # fmt: skip
    seconds = time.perf_counter() - started
    state, best = result.state, result.winner
    exported = score_exported(state.evaluator, best.assignment, state.search_indices)
    held = best.holdout
    qtypes = sorted(set(best.changes().values()))
    share = mac_share_above_int8(state.model, state.evaluator.sample(0), best.assignment)
    return {
        "model": run_name, "samples": SEARCH_SAMPLES[name], "target": TARGETS[name], "met": result.met,
        "evaluations": len(result.candidates), "seconds": round(seconds, 1), "cost": round(best.cost, 4),
        "macs_only_cost": round(macs_only_cost(state, best.assignment), 4), "entries": len(best.changes()),
        "qtypes": qtypes, "mac_share_above_int8": round(share, 4),
        "one_minimal": state.results.one_minimal,
        "worst_simulated": worst(best.scores, state.evaluator.outputs),
        "worst_exported": worst(exported, state.evaluator.outputs),
        "worst_held_out": worst(held, state.evaluator.outputs) if held else None,
        "float_items": state.results.fallback.items if state.results.fallback else None,
        "changes": best.changes(),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default=",".join([*RUNS, "vad", "magika", "layout", "ocr_det"]))
    parser.add_argument("--out", default=tempfile.gettempdir() + "/autoprec-issue10")
    args = parser.parse_args()
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    for name in args.models.split(","):
        row = run(name, folder)
        (folder / f"{name}.json").write_text(json.dumps(row, indent=2))
        print("| " + " | ".join(str(v) for v in row.values()) + " |", flush=True)


if __name__ == "__main__":
    main()
