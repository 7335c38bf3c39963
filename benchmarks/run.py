"""autoprec benchmarks on the four public demo models: engine speed, baselines, search quality.

    python benchmarks/run.py [--models layout,ocr_det,vad,magika] [--samples 8] [--out DIR]

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
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS = ("layout", "ocr_det", "vad", "magika")
PARTS = ("calibrate", "speed", "baselines", "search")
# Samples the search evaluates on (the first N of the calibration samples); layout and ocr_det
# run 70-110 ms per sample, so their searches use 4 to keep the whole benchmark near 15 minutes.
SEARCH_SAMPLES = {"layout": 4, "ocr_det": 4, "vad": 8, "magika": 8}
CALIBRATION_SAMPLES = 8
LAYOUT_CALIBRATION_SAMPLES = 16  # the "< 60 s on 2 cores" target
DEFAULT_TARGET = 0.99
LADDER = (0.99, 0.999, 0.9999, 0.99999)
BUDGET = 50
SEARCH_JOBS = 2
COSINE = "cosine-similarity"


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def peak_rss_mb() -> float:
    """ru_maxrss of this process (KiB on Linux) in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def children_peak_rss_mb() -> float:
    """Largest VmHWM among this process's live child processes (the loky workers), in MiB."""
    me, peak = os.getpid(), 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != me:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except (OSError, ValueError, IndexError):
            continue
    return peak


def random_assignments(state_units, base: dict[str, str], count: int, fraction: float, seed: int):
    """`count` distinct assignments raising a random `fraction` of the units each."""
    from autoprec.engine.units import raise_units

    rng = np.random.default_rng(seed)
    out, seen = [], set()
    while len(out) < count:
        k = max(1, int(round(fraction * len(state_units))))
        chosen = [state_units[i] for i in sorted(rng.choice(len(state_units), k, replace=False))]
        assignment = raise_units(base, chosen)
        key = json.dumps(sorted(assignment.items()))
        if key not in seen:
            seen.add(key)
            out.append(assignment)
    return out


def eval_spec(work: Path, samples: int | None):
    from autoprec.evaluate import EvalSpec

    folder = work / "model_output"
    return EvalSpec(str(folder / "calibrated_model.onnx"), str(folder / "calibration_data"), samples)


REPO = Path(__file__).resolve().parent.parent


def engine_version() -> str:
    """git HEAD (short) and a hash of the engine sources as they are on disk (others may edit them)."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted([*REPO.glob("autoprec/**/*.py"), *REPO.glob("strategies/*.py")]):
        digest.update(str(path.relative_to(REPO)).encode() + path.read_bytes())
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "autoprec", "strategies"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        head, dirty = "unknown", ""
    return f"{head}{'+dirty' if dirty else ''} (sources {digest.hexdigest()[:10]})"


def wait_for_quiet(limit: float, patience: float = 600.0) -> None:
    """Wait (at most `patience` s) until the 1-minute load average is below `limit` (shared machines)."""
    deadline = time.monotonic() + patience
    while os.getloadavg()[0] >= limit and time.monotonic() < deadline:
        time.sleep(10)
    if os.getloadavg()[0] >= limit:
        log(f"load average still {os.getloadavg()[0]:.2f} >= {limit}; timing anyway")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# the parts (run in the child process of one model)
# ----------------------------------------------------------------------------------------------
def prepare(name: str, work: Path, samples: int) -> Path:
    """Demo model + realistic samples in work/demo (written every run; cheap and deterministic)."""
    from autoprec.demo import write_demo_data

    needed = max(samples, CALIBRATION_SAMPLES, LAYOUT_CALIBRATION_SAMPLES if name == "layout" else 0)
    model, _ = write_demo_data(name, work / "demo", needed, force=True)
    return model


def part_calibrate(name: str, work: Path, model: Path, samples: int) -> dict:
    from autoprec.calibrate import calibrate

    result = {}
    counts = [max(CALIBRATION_SAMPLES, samples)]
    if name == "layout":
        counts.append(LAYOUT_CALIBRATION_SAMPLES)
    for count in counts:
        out = work / ("model_output" if count == counts[0] else f"model_output_{count}")
        started = time.perf_counter()
        calibrated = calibrate(model, work / "demo" / "calibration_data", out, num_samples=count, force=True)
        result[str(count)] = {
            "seconds": round(time.perf_counter() - started, 2),
            "calibration_nodes": len(calibrated.calibration),
            "weights": sum(c.tensor_type == "weight" for c in calibrated.calibration.values()),
        }
        log(f"{name}: calibrated with {count} samples in {result[str(count)]['seconds']} s")
    return result


def part_speed(name: str, work: Path, samples: int, repeats: int) -> dict:
    import onnxruntime as ort

    from autoprec.demo import fetch_model
    from autoprec.engine.baselines import baseline_assignments
    from autoprec.engine.units import search_units
    from autoprec.evaluate import Evaluator, session_options
    from autoprec.evaluate.metrics import compare
    from autoprec.hardware import get_profile

    spec = eval_spec(work, samples)
    ev1 = Evaluator(spec, jobs=1)
    feeds = [ev1.sample(i) for i in range(ev1.num_samples)]
    model = ev1.model
    profile = get_profile("generic")
    units = search_units(model, profile)
    base = baseline_assignments(model, profile)
    result: dict = {"samples": ev1.num_samples, "calibration_nodes": len(model.calibration), "units": len(units),
                    "load_average_before": os.getloadavg()}  # fmt: skip

    # float model, plain onnxruntime (the original file as shipped)
    float_path = str(fetch_model(name))
    for label, options in (("float_default", None), ("float_1thread", _one_thread())):
        session = ort.InferenceSession(float_path, options, providers=["CPUExecutionProvider"])
        outputs = [o.name for o in session.get_outputs()]
        session.run(outputs, feeds[0])
        result[label] = median_time(lambda s=session, o=outputs: [s.run(o, f) for f in feeds], repeats)

    log(f"{name}: float timed")
    # one candidate through the Evaluator (jobs=1): warm the weight cache with the baselines first
    ev1.evaluate(base["all-int8"])
    ev1.evaluate(base["all-int16"])
    mixes = random_assignments(units, base["all-int8"], 2 * repeats + 1, 0.5, seed=1)
    simulator = ev1.simulator
    outputs = ev1.outputs
    references = ev1.references(list(range(len(feeds))))
    builds, runs, metrics, totals = [], [], [], []
    for r in range(repeats):
        started = time.perf_counter()
        session = simulator.session(mixes[r])
        built = time.perf_counter()
        produced = [session.run(outputs, f) for f in feeds]
        ran = time.perf_counter()
        for ref, out in zip(references, produced):
            for expected, got in zip(ref, out):
                compare(expected, got)
        builds.append(built - started)
        runs.append(ran - built)
        metrics.append(time.perf_counter() - ran)
        started = time.perf_counter()
        ev1.evaluate(mixes[repeats + r])
        totals.append(time.perf_counter() - started)
    result["eval_build"] = statistics.median(builds)
    result["eval_run"] = statistics.median(runs)
    result["eval_metrics"] = statistics.median(metrics)
    result["eval_total"] = statistics.median(totals)

    log(f"{name}: evaluator timed")
    # the same candidate as a static QDQ model (what it is exported as)
    candidate = mixes[-1]
    started = time.perf_counter()
    proto = model.to_onnx(candidate).SerializeToString()
    static = ort.InferenceSession(proto, session_options(1), providers=["CPUExecutionProvider"])
    result["static_build"] = time.perf_counter() - started
    static.run(outputs, feeds[0])
    result["static_run"] = median_time(lambda: [static.run(outputs, f) for f in feeds], repeats)
    # does the simulator score the candidate like its export? (same float references, same metric)
    simulated = simulator.session(candidate)
    diff, sim_cos, static_cos = 0.0, {o: [] for o in outputs}, {o: [] for o in outputs}
    for f, ref in zip(feeds, references):
        for o, r, a, b in zip(outputs, ref, simulated.run(outputs, f), static.run(outputs, f)):
            if a.size:
                diff = max(diff, float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))))
            sim_cos[o].append(compare(r, a)[COSINE])
            static_cos[o].append(compare(r, b)[COSINE])
    drift = {o: float(np.mean(static_cos[o]) - np.mean(sim_cos[o])) for o in outputs}
    result["static_vs_simulator_max_abs_diff"] = diff
    result["static_minus_simulator_mean_cosine"] = drift
    result["simulator_mean_cosine"] = {o: float(np.mean(v)) for o, v in sim_cos.items()}
    static = simulated = proto = None  # free the sessions before the throughput runs

    log(f"{name}: static QDQ timed")
    # throughput: evaluate_many on distinct assignments, jobs=1 vs jobs=2 (after a warm-up call)
    count = 8 if name in ("layout", "ocr_det") else 32
    batch = random_assignments(units, base["all-int8"], count, 0.3, seed=2)
    ev1.evaluate_many(batch[:2])  # the weight cache is warm already (baselines above)
    started = time.perf_counter()
    ev1.evaluate_many(batch)
    result["evals_per_s_jobs1"] = count / (time.perf_counter() - started)
    single1 = median_time(lambda: ev1.evaluate(batch[0]), max(1, repeats - 1))
    log(f"{name}: jobs=1 timed")
    ev2 = Evaluator(spec, jobs=2)
    # warm-up: the same batch once, so both workers hold the model, samples, float references, weights
    ev2.evaluate_many(batch)
    started = time.perf_counter()
    ev2.evaluate_many(batch)
    result["evals_per_s_jobs2"] = count / (time.perf_counter() - started)
    result["throughput_assignments"] = count
    # one assignment with jobs=2: the samples are split over the workers (what a bisection step does)
    result["single_eval_jobs1"] = single1
    result["single_eval_jobs2"] = median_time(lambda: ev2.evaluate(batch[1]), max(1, repeats - 1))
    result["peak_rss_mb_after_speed"] = peak_rss_mb()
    result["workers_peak_rss_mb"] = children_peak_rss_mb()
    result["load_average_after"] = os.getloadavg()
    log(f"{name}: speed done")
    return result


def _one_thread():
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return options


def part_baselines(name: str, work: Path, samples: int) -> dict:
    from autoprec.engine.baselines import baseline_assignments
    from autoprec.evaluate import Evaluator
    from autoprec.hardware import get_profile

    spec = eval_spec(work, samples)
    ev = Evaluator(spec, jobs=2)
    todo: dict[str, dict[str, str]] = {}
    for profile in ("generic", "hmct"):
        for label, assignment in baseline_assignments(ev.model, get_profile(profile)).items():
            if label == "real-int16" and profile == "hmct":
                continue  # real-int16 ignores the profile
            todo[f"{profile}/{label}"] = assignment
    todo["hmct/real-int16"] = todo["generic/real-int16"]
    keys = list(dict.fromkeys(json.dumps(sorted(a.items())) for a in todo.values()))
    scored = dict(zip(keys, ev.evaluate_many([dict(json.loads(k)) for k in keys])))
    result: dict = {"samples": ev.num_samples, "outputs": ev.outputs, "per_sample": {}, "mean": {}}
    for label, assignment in todo.items():
        scores = scored[json.dumps(sorted(assignment.items()))]
        result["per_sample"][label] = {o: scores.values[o][COSINE].tolist() for o in ev.outputs}
        result["mean"][label] = {o: scores.aggregate(o, COSINE) for o in ev.outputs}
    for profile in ("generic", "hmct"):
        raisable = sum(q == "int16" for q in todo[f"{profile}/all-int16"].values())
        result[f"{profile}_raisable"] = raisable
    log(f"{name}: baselines done")
    return result


def choose_target(baselines: dict, search_samples: int, override: float | None) -> tuple[float, str]:
    """0.99, unless all-int8 already passes it or all-int16 misses it (on the search samples)."""
    if override is not None:
        return override, "set on the command line"
    per = baselines["per_sample"]

    def worst(label: str) -> float:
        return min(float(np.mean(v[:search_samples])) for v in per[label].values())

    w8, w16 = worst("generic/all-int8"), worst("generic/all-int16")
    if w8 < DEFAULT_TARGET <= w16:
        return DEFAULT_TARGET, f"all-int8 misses 0.99 (worst output {w8:.4f}), all-int16 meets it ({w16:.4f})"
    if w16 < DEFAULT_TARGET:
        target = float(np.floor(w16 * 100) / 100 - 0.01)
        if target <= w8:
            target = float(np.floor((w8 + w16) / 2 * 1000) / 1000)
        return round(target, 4), (
            f"all-int16 misses 0.99 (worst output {w16:.4f}); target 0.01 below its 2-digit floor "
            f"(all-int8 worst {w8:.4f})"
        )
    # all-int8 already meets 0.99: the geometric middle of the two in (1 - cosine), on a 1-2-5 grid
    nice = [1 - m * 10.0**-e for e in range(2, 7) for m in (5, 2, 1)]
    middle = 1 - np.sqrt(max(1 - w8, 1e-12) * max(1 - w16, 1e-12))
    inside = [t for t in nice if w8 < t <= w16] or [middle]
    target = min(inside, key=lambda t: abs(np.log(1 - t) - np.log(1 - middle)))
    return round(float(target), 7), (
        f"all-int8 already meets 0.99 (worst output {w8:.6f}); target between it and all-int16 ({w16:.6f})"
    )


def part_search(name: str, work: Path, search_samples: int, target: float, why: str) -> dict:
    from autoprec.api import search

    out = work / "search"
    shutil.rmtree(out, ignore_errors=True)  # no cached sensitivity pass from an earlier run
    started = time.perf_counter()
    res = search(
        work / "model_output", target=target, budget=BUDGET, jobs=SEARCH_JOBS, num_samples=search_samples,
        out=out, force=True,
    )  # fmt: skip
    wall = time.perf_counter() - started
    state = res.state
    info = json.loads((out / "result.json").read_text())
    winner = res.winner
    result: dict = {
        "target": target,
        "target_why": why,
        "samples": search_samples,
        "sensitivity_samples": len(state.sensitivity_indices),
        "met": res.met,
        "evaluations": state.used,
        "sensitivity_runs": state.sensitivity_runs,
        "sensitivity_seconds": state.sensitivity_seconds,
        "evaluation_model_runs": info.get("evaluation_model_runs"),
        "wall_seconds": wall,
        "cost": winner.cost if winner else None,
        "entries": len(winner.changes()) if winner else None,
        "raised_units": len(state.raised_units(winner)) if winner else None,
        "units": len(state.units),
        "one_minimal": info.get("one_minimal"),
        "winner_strategy": winner.strategy if winner else None,
        "winner_scores": {t.output: t.value(winner.scores) for t in state.target.outputs} if winner else None,
        "by_strategy": _count_by(c.strategy for c in state.candidates),
        "first_pass_index": next((c.index for c in state.candidates if c.passed), None),
        "first_pass_cost": next((c.cost for c in state.candidates if c.passed), None),
    }
    log(f"{name}: search done ({state.used} evaluations, {wall:.1f} s)")

    # the baseline to beat: a fixed HMCT-style ladder on the same sensitivity pass (cached on disk)
    sensitivity = state.sensitivity()
    worst = {
        unit: min(per_output[COSINE] for per_output in values.values()) for unit, values in sensitivity.values.items()
    }
    rungs, passing, seen = [], None, {}
    started = time.perf_counter()
    for threshold in LADDER:
        units = [u for u in worst if worst[u] <= threshold]
        assignment = state.raise_units(units)
        key = json.dumps(sorted(assignment.items()))
        if key not in seen:  # a rung equal to the previous one is not evaluated again
            seen[key] = state.evaluator.evaluate(assignment)
        scores = seen[key]
        passed = state.target.passes(scores)
        rungs.append({
            "threshold": threshold, "units": len(units), "passed": passed, "cost": state.cost(assignment),
            "entries": sum(q != "int8" for q in assignment.values()),
            "worst_output": min(t.value(scores) for t in state.target.outputs),
        })  # fmt: skip
        if passed:
            passing = rungs[-1]
            break
    result["ladder"] = {
        "evaluations": len(seen),
        "seconds": time.perf_counter() - started,
        "rungs": rungs,
        "passing_threshold": passing["threshold"] if passing else None,
        "cost": passing["cost"] if passing else None,
        "entries": passing["entries"] if passing else None,
        "raised_units": passing["units"] if passing else None,
    }
    # how many search evaluations it took to hold a passing candidate cheaper than the ladder's
    ladder_cost = result["ladder"]["cost"]
    result["evals_to_beat_ladder"] = next(
        (
            c.index + 1
            for c in sorted(state.candidates, key=lambda c: c.index)
            if c.passed and (ladder_cost is None or c.cost < ladder_cost)
        ),
        None,
    )
    # the winner (and the ladder's rung) re-scored on the exported static QDQ model
    if winner is not None:
        result["winner_on_export"] = export_scores(state, winner.assignment)
    if passing is not None:
        units = [u for u in worst if worst[u] <= passing["threshold"]]
        result["ladder"]["on_export"] = export_scores(state, state.raise_units(units))
    result["peak_rss_mb_after_search"] = peak_rss_mb()
    result["workers_peak_rss_mb"] = children_peak_rss_mb()
    log(f"{name}: ladder done ({len(seen)} evaluations)")
    return result


def export_scores(state, assignment: dict[str, str]) -> dict:
    """Mean cosine per output of `assignment` run as its exported static QDQ model, and whether it meets
    the search's target there."""
    from autoprec.evaluate.exported import score_exported

    scores = score_exported(state.evaluator, assignment)
    means = {t.output: t.value(scores) for t in state.target.outputs}
    return {"mean_cosine": means, "passes": state.target.passes(scores), "worst": min(means.values())}


def _count_by(items) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


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


# ----------------------------------------------------------------------------------------------
# tables
# ----------------------------------------------------------------------------------------------
def machine() -> str:
    import onnx
    import onnxruntime as ort

    return (
        f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), Python {platform.python_version()}, "
        f"onnxruntime {ort.__version__}, onnx {onnx.__version__}, numpy {np.__version__}"
    )


def tables(results: dict[str, dict]) -> str:
    ms = lambda s: f"{s * 1000:.0f}"  # noqa: E731
    lines: list[str] = []
    speed = {m: r["speed"] for m, r in results.items() if "speed" in r}
    if speed:
        lines += [
            "### Evaluation speed: one candidate on all evaluation samples (ms, median of repeats)",
            "",
            "| model | samples | float default | float 1 thread | eval build | eval run | eval metrics "
            "| eval total (jobs=1) | eval / float 1t | eval / float default | static QDQ run "
            "| eval total / static run (target <= 1.1) | (build+run) / static run |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for m, s in speed.items():
            total = s["eval_total"]
            rest = s.get("eval_metrics", total - s["eval_build"] - s["eval_run"])
            ratio = total / s["static_run"]
            lines.append(
                f"| {m} | {s['samples']} | {ms(s['float_default'])} | {ms(s['float_1thread'])} | {ms(s['eval_build'])} "
                f"| {ms(s['eval_run'])} | {ms(rest)} | {ms(total)} | {total / s['float_1thread']:.2f}x "
                f"| {total / s['float_default']:.2f}x | {ms(s['static_run'])} "
                f"| {ratio:.2f}x {'(met)' if ratio <= 1.1 else '(missed)'} "
                f"| {(s['eval_build'] + s['eval_run']) / s['static_run']:.2f}x |"
            )
        lines += [
            "",
            "### Throughput: Evaluator.evaluate_many on distinct assignments, after a warm-up call",
            "",
            "| model | assignments | evals/s jobs=1 | evals/s jobs=2 | jobs=2 / jobs=1 (target >= 1.6) "
            "| one eval jobs=1 (ms) | one eval jobs=2, samples split (ms) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for m, s in speed.items():
            ratio = s["evals_per_s_jobs2"] / s["evals_per_s_jobs1"]
            lines.append(
                f"| {m} | {s['throughput_assignments']} | {s['evals_per_s_jobs1']:.2f} | {s['evals_per_s_jobs2']:.2f} "
                f"| {ratio:.2f}x {'(met)' if ratio >= 1.6 else '(missed)'} | {ms(s['single_eval_jobs1'])} "
                f"| {ms(s['single_eval_jobs2'])} |"
            )
        lines += [
            "",
            "### Simulator vs the exported static QDQ model (same mixed candidate, same float references)",
            "",
            "| model | max abs output diff | largest mean-cosine gap static - simulator (output) "
            "| simulator mean cosine there | load avg before / after speed part |",
            "|---|---:|---:|---:|---|",
        ]
        for m, s in speed.items():
            drift = s.get("static_minus_simulator_mean_cosine", {})
            out = max(drift, key=lambda o: abs(drift[o])) if drift else None
            gap = f"{drift[out]:+.6f} ({out})" if out else "-"
            sim = f"{s['simulator_mean_cosine'][out]:.6f}" if out else "-"
            load = (
                f"{s['load_average_before'][0]:.2f} / {s['load_average_after'][0]:.2f}"
                if "load_average_after" in s else "-"
            )  # fmt: skip
            lines.append(f"| {m} | {s['static_vs_simulator_max_abs_diff']:.3g} | {gap} | {sim} | {load} |")
        lines.append("")
    memory = {m: r["memory"] for m, r in results.items() if "memory" in r}
    if memory:
        lines += [
            "### Peak memory (ru_maxrss of the benchmark's process for that part; VmHWM of its largest loky worker)",
            "",
            "| model | calibrate | speed: process / worker | baselines: process / worker | search: process / worker |",
            "|---|---:|---:|---:|---:|",
        ]
        for m, mem in memory.items():
            cells = []
            for part in PARTS:
                info = mem.get(part)
                if info is None:
                    cells.append("-")
                elif part == "calibrate":
                    cells.append(f"{info['process_mb']:.0f} MiB")
                else:
                    cells.append(f"{info['process_mb']:.0f} / {info['worker_mb']:.0f} MiB")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    seconds = {m: r["seconds"] for m, r in results.items() if "seconds" in r}
    if seconds:
        lines += [
            "### Benchmark wall time per part (s, each part in its own process; waits for a quiet machine excluded)",
            "",
            "| model | " + " | ".join(PARTS) + " | total |",
            "|---|" + "---:|" * (len(PARTS) + 1),
        ]
        for m, sec in seconds.items():
            cells = [f"{sec[p]:.0f}" if p in sec else "-" for p in PARTS]
            lines.append(f"| {m} | " + " | ".join(cells) + f" | {sum(sec.values()):.0f} |")
        lines.append("")
    cal = {m: r["calibrate"] for m, r in results.items() if "calibrate" in r}
    if cal:
        lines += [
            "### Calibration (autoprec.calibrate, max calibrator, per-channel weights)",
            "",
            "| model | samples | seconds | calibration nodes (weights) |",
            "|---|---:|---:|---:|",
        ]
        for m, c in cal.items():
            for count, info in c.items():
                lines.append(
                    f"| {m} | {count} | {info['seconds']:.1f} | {info['calibration_nodes']} ({info['weights']}) |"
                )
        lines.append("")
    base = {m: r["baselines"] for m, r in results.items() if "baselines" in r}
    if base:
        lines += [
            "### Baselines: mean cosine vs float per output",
            "",
            "| model | output | all-int8 | all-int16 generic | all-int16 hmct | real-int16 |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for m, b in base.items():
            for out in b["outputs"]:
                mean = b["mean"]
                lines.append(
                    f"| {m} ({b['samples']} samples) | {out} | {mean['generic/all-int8'][out]:.6f} "
                    f"| {mean['generic/all-int16'][out]:.6f} | {mean['hmct/all-int16'][out]:.6f} "
                    f"| {mean['generic/real-int16'][out]:.6f} |"
                )
        lines.append("")
    search = {m: r["search"] for m, r in results.items() if "search" in r}
    if search:
        lines += [
            f"### Search: autoprec.api.search(budget={BUDGET}, jobs={SEARCH_JOBS}), default strategies, generic",
            "",
            "| model | samples | target | met | evaluations | sensitivity runs (s) | wall s | cost | entries "
            "| raised units / all | one_minimal | worst output: simulated | on the exported QDQ model |",
            "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
        ]
        for m, s in search.items():
            cost = f"{s['cost']:.4f}" if s["cost"] is not None else "-"
            simulated = min(s["winner_scores"].values()) if s["winner_scores"] else None
            export = s.get("winner_on_export")
            lines.append(
                f"| {m} | {s['samples']} | {s['target']:g} | {'yes' if s['met'] else 'no'} | {s['evaluations']} "
                f"| {s['sensitivity_runs']} ({s['sensitivity_seconds']:.1f}) | {s['wall_seconds']:.1f} | {cost} "
                f"| {s['entries']} | {s['raised_units']} / {s['units']} | {s['one_minimal']} "
                f"| {simulated:.5f} | {_export_cell(export)} |"
            )
        lines += [
            "",
            "### The baseline to beat: fixed HMCT-style ladder (per-unit cosine <= 0.99 / 0.999 / 0.9999 / 0.99999)",
            "",
            "| model | ladder evaluations | first passing rung | ladder cost | ladder entries | ladder on export "
            "| autoprec evaluations to beat the ladder's cost (incl. its 2 baselines) | autoprec fewer evaluations? "
            "| autoprec lower cost? |",
            "|---|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        for m, s in search.items():
            lad = s["ladder"]
            lcost = f"{lad['cost']:.4f}" if lad["cost"] is not None else "none passes"
            fewer = "yes" if s["evaluations"] < lad["evaluations"] else "no"
            if lad["cost"] is None:
                fewer = "n/a (no rung passes)"
            if lad["cost"] is None:
                cheaper = "yes (ladder fails)" if s["met"] else "no (both fail)"
            elif not s["met"]:
                cheaper = "no (autoprec fails)"
            else:
                cheaper = "yes" if s["cost"] < lad["cost"] else "no"
            lines.append(
                f"| {m} | {lad['evaluations']} | {lad['passing_threshold'] if lad['passing_threshold'] else '-'} "
                f"| {lcost} | {lad['entries'] if lad['entries'] is not None else '-'} "
                f"| {_export_cell(lad.get('on_export'))} | {s.get('evals_to_beat_ladder') or '-'} | {fewer} "
                f"| {cheaper} |"
            )
        lines += ["", "Targets:", ""]
        for m, s in search.items():
            lines.append(f"- {m}: {s['target']:g} mean cosine on every output: {s['target_why']}")
        lines += ["", "Ladder rungs (units raised, pass, cost, worst output mean cosine):", ""]
        for m, s in search.items():
            rungs = "; ".join(
                f"<= {r['threshold']:g}: {r['units']} units, {'pass' if r['passed'] else 'fail'}, "
                f"cost {r['cost']:.4f}, {r['worst_output']:.5f}"
                for r in s["ladder"]["rungs"]
            )
            lines.append(f"- {m}: {rungs}")
        lines += ["", "Search evaluations by strategy:", ""]
        for m, s in search.items():
            by = ", ".join(f"{k} {v}" for k, v in s["by_strategy"].items())
            lines.append(
                f"- {m}: {by}; first passing candidate #{s['first_pass_index']} "
                f"(cost {s['first_pass_cost'] if s['first_pass_cost'] is None else round(s['first_pass_cost'], 4)}); "
                f"winner from {s['winner_strategy']}"
            )
        lines.append("")
    return "\n".join(lines)


def _export_cell(export: dict | None) -> str:
    if not export:
        return "-"
    return f"{export['worst']:.5f} ({'passes' if export['passes'] else 'FAILS'})"


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
            command = [sys.executable, __file__, "--child", name, "--samples", str(args.samples), "--out", args.out,
                       "--parts", part, "--repeats", str(args.repeats)]  # fmt: skip
            if args.search_samples:
                command += ["--search-samples", str(args.search_samples)]
            if args.target:
                command += ["--target", args.target]
            if args.quiet_load and part != "baselines":
                wait_for_quiet(args.quiet_load)
            log(f"{name}: {part}")
            subprocess.run(command, check=True)
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
