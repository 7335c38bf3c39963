"""The `speed` part: plain onnxruntime on the float model vs one candidate through the Evaluator, the static
QDQ model, throughput with one and two workers, and the simulator against the exported model."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.common import (
    COSINE,
    children_peak_rss_mb,
    eval_spec,
    log,
    median_time,
    peak_rss_mb,
    random_assignments,
)


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
