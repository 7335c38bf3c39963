"""Calibration as part of the search: all-int8 per method and scheme, and the search winner with the default
calibration (auto: the scheme by measurement, max ranges as the search's start, the best method's as the
best-int8 baseline), with threshold tuning (opt-in), the old default (symmetric max) and asymmetric max.

Per model: 8 calibration samples (make_samples 0-7) and held-out search samples (8-11 for layout and
ocr_det, 8-15 for vad and magika; the search's own held-out split is off, so it scores all of them),
generic profile, budget 50, jobs 2; the target is lowered to 0.01 below all-int16's worst output where
all-int16 (old default calibration) misses it on the search samples. "MACs int16" is the share of all
MACs (Conv, ConvTranspose, MatMul, Gemm) in ops with a 16-bit input.
Usage: nice -n 10 python -m benchmarks.calibration [--models layout,ocr_det,vad,magika] [--budget 50] [--runs ...]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

from autoprec.calibrate import CalibrationSettings, calibrate
from autoprec.calibration.methods import label as range_label
from autoprec.data import save_samples
from autoprec.demo import fetch_model, make_samples
from autoprec.engine.baselines import baseline_assignments
from autoprec.engine.cost import op_costs
from autoprec.engine.settings import DEFAULT_STRATEGIES
from autoprec.evaluate import EvalSpec, Evaluator
from autoprec.hardware import get_profile
from autoprec.ir import CalibratedModel, base_qtype
from benchmarks.shared import search_sharing_analyses

MODELS = {"layout": (4, 0.99), "ocr_det": (4, 0.99), "vad": (8, 0.87), "magika": (8, 0.99)}  # search samples, target
CALIBRATION_SAMPLES = 8
MAC_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
WITHOUT_TUNING = tuple(s for s in DEFAULT_STRATEGIES if s != "threshold_tuning")
WITH_TUNING = (WITHOUT_TUNING[0], "threshold_tuning", *WITHOUT_TUNING[1:])  # opt-in: after baselines
RUNS = {  # the default first; searches on one calibration share one sensitivity pass
    "default (auto)": (CalibrationSettings(), WITHOUT_TUNING),
    "default + threshold tuning": (CalibrationSettings(), WITH_TUNING),
    "old default (symmetric max)": (CalibrationSettings(method="max"), WITHOUT_TUNING),
    "asymmetric max": (CalibrationSettings(method="max", asymmetric=True), WITHOUT_TUNING),
}


def mac_share(model: CalibratedModel, assignment: dict[str, str], sample: dict) -> float:
    """Share of the model's MACs in ops with at least one 16-bit input."""
    costs = op_costs(model, sample)
    macs = {n.name: costs[n.name] for n in model.model.graph.node if n.op_type in MAC_OPS}
    wide = {
        node for name, q in assignment.items() if base_qtype(q) == "int16"
        for node, _ in model.calibration[name].consumers if node in macs
    }  # fmt: skip
    return sum(macs[n] for n in wide) / max(sum(macs.values()), 1.0)


def reachable_target(workdir: Path, data: Path, target: float) -> float:
    """`target`, or 0.01 below all-int16's worst output (rounded down to 2 digits) when all-int16 misses it
    (benchmarks/RESULTS.md's rule), on the old default's calibration."""
    evaluator = Evaluator(EvalSpec(str(workdir / "calibrated_model.onnx"), str(data)), jobs=2)
    scores = evaluator.evaluate(baseline_assignments(evaluator.model, get_profile("generic"))["all-int16"])
    worst = min(scores.aggregate(o, "cosine-similarity") for o in evaluator.outputs)
    return target if worst >= target else math.floor((worst - 0.01) * 100) / 100


def run_model(name: str, budget: int, work: Path, chosen: list[str]) -> dict:
    search_samples, target = MODELS[name]
    samples = make_samples(name, CALIBRATION_SAMPLES + search_samples)
    if not (work / "eval").exists():
        save_samples(samples[:CALIBRATION_SAMPLES], work / "data")
        save_samples(samples[CALIBRATION_SAMPLES:], work / "eval")
    report: dict = {"target": target, "search_samples": search_samples, "searches": {}}
    runs = {k: v for k, v in RUNS.items() if k in chosen}
    if not (work / "max").exists():
        calibrate(fetch_model(name), work / "data", work / "max", CalibrationSettings(method="max"))
    target = reachable_target(work / "max", work / "eval", target)
    report["target"] = target
    calibrated: dict[str, Path] = {"max": work / "max"}
    for label, (settings, strategies) in runs.items():
        key = settings.method + ("-asymmetric" if settings.asymmetric else "")
        if key not in calibrated:
            started = time.perf_counter()
            if (work / key).exists():  # --work: an earlier run's calibration
                model = CalibratedModel.load(work / key / "calibrated_model.onnx")
            else:
                model = calibrate(fetch_model(name), work / "data", work / key, settings)
            report.setdefault("calibration_seconds", {})[key] = round(time.perf_counter() - started, 1)
            if model.settings["auto_trials"]:
                report["auto_trials"] = model.settings["auto_trials"]
                keys = ("method", "percentile", "asymmetric", "best_int8")
                report["auto_choice"] = {k: model.settings[k] for k in keys}
                report["auto_calibration_seconds"] = model.settings["seconds"]
            calibrated[key] = work / key
        started = time.perf_counter()
        result = search_sharing_analyses(
            work / f"cache-{key}", work / f"search-{len(report['searches'])}-{time.time():.0f}", calibrated[key],
            data=work / "eval", target=target, budget=budget, strategies=strategies, holdout=0,
        )  # fmt: skip
        winner = result.winner
        outputs = result.state.evaluator.outputs
        worst = {
            b: round(min(c.scores.aggregate(o, "cosine-similarity") for o in outputs), 4)
            for b in ("all-int8", "best-int8")
            if (c := result.state.known(result.state.baselines.get(b, {}))) is not None
        }  # fmt: skip
        report["searches"][label] = {
            "met": result.met,
            "all_int8_worst": worst["all-int8"],
            "best_int8_worst": worst.get("best-int8"),
            "cost": round(winner.cost, 4),
            "macs_int16": round(mac_share(result.state.model, winner.assignment, samples[CALIBRATION_SAMPLES]), 4),
            "entries": len(winner.changes()),
            "ranges": sum("@" in q for q in winner.assignment.values()),
            "evaluations": result.state.used,
            "seconds": round(time.perf_counter() - started, 1),
        }
        print(name, label, report["searches"][label], flush=True)
    return report


def tables(results: dict) -> str:
    """The markdown tables of RESULTS.md: all-int8 per method and scheme, then the searches."""
    labels = [t["label"] for t in next(iter(results.values()))["auto_trials"] if t["scheme"] == "symmetric"]
    lines = [
        "| model | scheme | " + " | ".join(labels) + " | best-int8 (bold), search start |",
        "|---|---|" + "---|" * (len(labels) + 1),
    ]
    for name, report in results.items():
        choice = report["auto_choice"]
        scheme = "asymmetric" if choice["asymmetric"] else "symmetric"
        for row in ("symmetric", "asymmetric"):
            cells = []
            for trial in (t for t in report["auto_trials"] if t["scheme"] == row):
                value = "NaN" if trial["score"] is None else f"{trial['score']:.4f}"
                cells.append(f"**{value}**" if (row, trial["label"]) == (scheme, choice["best_int8"]) else value)
            start = f"{choice['best_int8']}, {range_label(choice['method'], choice['percentile'])}"
            lines.append(f"| {name} | {row} | " + " | ".join(cells) + f" | {start if row == scheme else ''} |")
    lines += [
        "",
        "| model | target | calibration, strategies | all-int8 | best-int8 | met | winner cost | MACs int16 "
        "| entries (ranges) | evaluations | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, report in results.items():
        for run, r in report["searches"].items():
            lines.append(
                f"| {name} | {report['target']} | {run} | {r['all_int8_worst']} | {r.get('best_int8_worst') or '-'} | "
                f"{'yes' if r['met'] else 'no'} | {r['cost']} | {100 * r['macs_int16']:.1f}% | {r['entries']} "
                f"({r['ranges']}) | {r['evaluations']} | {r['seconds']} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--budget", type=int, default=50)
    parser.add_argument("--runs", default=",".join(RUNS), help=f"which searches: {', '.join(RUNS)}")
    parser.add_argument("--json", default="calibration_results.json", help="where the numbers go")
    parser.add_argument("--work", help="work folder (an earlier run's: its calibrations and analyses are reused)")
    parser.add_argument("--tables", nargs="*", metavar="JSON", help="only print the tables of earlier runs")
    args = parser.parse_args()
    if args.tables:
        print(tables({k: v for path in args.tables for k, v in json.loads(Path(path).read_text()).items()}))
        return
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="autoprec-calibration-"))
    results = {}
    for name in args.models.split(","):
        results[name] = run_model(name, args.budget, work / name, args.runs.split(","))
        Path(args.json).write_text(json.dumps(results, indent=2))
    print(tables(results))


if __name__ == "__main__":
    main()
