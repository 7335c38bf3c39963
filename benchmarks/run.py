"""autoprec benchmarks on the four public demo models: engine speed, baselines, search quality.

    python -m benchmarks.run [--models layout,ocr_det,vad,magika] [--samples 8] [--out DIR]

Each part of each model runs in its own child process (so the peak memory recorded is that part's):

- calibrate: `autoprec.calibrate` time with 8 samples (layout also with 16: the < 60 s target);
- speed: plain onnxruntime on the float model (default session options, and 1 intra-op thread =
  the evaluator's configuration), one candidate evaluation through `Evaluator` (jobs=1) split
  into session build / model run / metrics, the equivalent static QDQ model
  (`CalibratedModel.to_onnx`, `session.disable_quant_qdq=1`, 1 thread) and whether it gives the
  simulator's outputs, and evaluations per second with jobs=1 vs jobs=2
  (`Evaluator.evaluate_many` after a warm-up call);
- baselines: all-int8 / all-int16 / real-int16 mean cosine per output, generic and hmct profiles;
- search: `autoprec.api.search(budget=50, jobs=2)` with the default strategies, against a plain
  HMCT-style fixed threshold ladder on the same sensitivity pass, target and cost model.

Results go to DIR/<model>/results.json (merged when only some parts are re-run, `--parts`);
the markdown tables are printed and written to DIR/results.md (`--tables-only` prints them
again). On a shared machine, `--quiet-load 1.0` waits for a quiet moment before each timed part.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import (
    MODELS,
    PARTS,
    REPO,
    SEARCH_SAMPLES,
    children_peak_rss_mb,
    engine_version,
    log,
    machine,
    peak_rss_mb,
    prepare,
    wait_for_quiet,
)
from benchmarks.quality import choose_target, part_baselines, part_calibrate, part_search
from benchmarks.speed import part_speed
from benchmarks.tables import tables


def run_child(args: argparse.Namespace) -> None:
    """One part of one model, in its own process (so the peak memory recorded is that part's)."""
    name, part = args.child, args.parts
    work = Path(args.out) / name
    work.mkdir(parents=True, exist_ok=True)
    path = work / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    started = time.perf_counter()
    if part == "calibrate" or not (work / "model_output" / "calibrated_model.onnx").exists():
        model = prepare(name, work, args.samples)
        results["calibrate"] = part_calibrate(name, work, model, args.samples)
    if part == "speed":
        results["speed"] = part_speed(name, work, args.samples, args.repeats)
    if part == "baselines" or (part == "search" and "baselines" not in results):
        results["baselines"] = part_baselines(name, work, args.samples)
    if part == "search":
        samples = args.search_samples or SEARCH_SAMPLES[name]
        override = _targets(args.target).get(name)
        target, why = choose_target(results["baselines"], samples, override)
        results["search"] = part_search(name, work, samples, target, why)
    results.setdefault("memory", {})[part] = {"process_mb": peak_rss_mb(), "worker_mb": children_peak_rss_mb()}
    results.setdefault("seconds", {})[part] = time.perf_counter() - started
    results.setdefault("engine", {})[part] = engine_version()
    path.write_text(json.dumps(results, indent=1))


def _targets(text: str | None) -> dict[str, float]:
    if not text:
        return {}
    if "=" not in text:
        return {m: float(text) for m in MODELS}
    return {k: float(v) for k, v in (item.split("=") for item in text.split(","))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated (default: all four)")
    parser.add_argument("--samples", type=int, default=8, help="evaluation samples for speed and baselines")
    parser.add_argument("--search-samples", type=int, help=f"samples the searches use (default: {SEARCH_SAMPLES})")
    parser.add_argument("--target", help="search target: 0.99 for all, or layout=0.99,vad=0.87 (default: chosen)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"any of {','.join(PARTS)}")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (median)")
    parser.add_argument(
        "--out", default=str(Path(tempfile.gettempdir()) / "autoprec-bench"), help="work folder (default: %(default)s)"
    )
    parser.add_argument(
        "--quiet-load",
        type=float,
        help="before each timed part, wait up to 10 min for the 1-min load average to drop below this",
    )
    parser.add_argument("--tables-only", action="store_true", help="only print the tables of earlier runs in --out")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args)
        return 0
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        parser.error(f"unknown model {unknown[0]}; choose from {', '.join(MODELS)}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    parts = [] if args.tables_only else [p for p in PARTS if p in args.parts.split(",")]
    for name in models:
        for part in parts:
            command = [sys.executable, "-m", "benchmarks.run", "--child", name, "--samples", str(args.samples),
                       "--out", args.out, "--parts", part, "--repeats", str(args.repeats)]  # fmt: skip
            if args.search_samples:
                command += ["--search-samples", str(args.search_samples)]
            if args.target:
                command += ["--target", args.target]
            if args.quiet_load and part != "baselines":
                wait_for_quiet(args.quiet_load)
            log(f"{name}: {part}")
            subprocess.run(command, check=True, cwd=REPO)
    results = {}
    for name in models:
        path = Path(args.out) / name / "results.json"
        results[name] = json.loads(path.read_text())
    engines = sorted({v for r in results.values() for v in r.get("engine", {}).values()})
    header = (
        f"Run {datetime.date.today().isoformat()} on {machine()}; "
        + (
            "tables of earlier runs; "
            if args.tables_only
            else f"total {time.perf_counter() - started:.0f} s for {','.join(models)} ({args.parts}); "
        )
        + f"engine {', '.join(engines)}"
        + (" -- the engine changed during the run!" if len(engines) > 1 else "")
        + "\n"
    )
    text = header + "\n" + tables(results)
    (Path(args.out) / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
