"""Issue 12: what one candidate evaluation costs against the static QDQ run of the same samples, same process.

    python -m benchmarks.candidate_cost [--models layout,ocr_det,vad,magika] [--repeats 7] [--search layout]
        [--segments layout,ocr_det --counts 0,4,8,16] [--searches layout] [--reuse layout]

The setup of benchmarks/performance.py (8 calibration samples, 4 other samples to search on). Per model:

- micro (interleaved, median of `repeats`): the static QDQ export of a random mix (half the units raised) run
  warm over the 4 samples at 1 thread; `Evaluator.evaluate` (jobs 1) of a new mix; a third new mix taken
  apart into its steps (proto build, session creation, first run, other runs, metrics); and `Evaluator.evaluate`
  of a mix evaluated before (on other samples: a held-out check), which reuses its session.
- segments (`--segments`, per segment count K; 0: whole sessions): new candidates against the static QDQ run
  of each, one-unit changes (prune-like) and random half-raised mixes (the worst case for segment reuse).
- searches (`--searches`): the same search with whole sessions, then with cached segments (AUTOPREC_SEGMENTS).
- search (`--search`): a real search (target as performance.py, budget 50, jobs 2, default strategies); the
  evaluation wall time per candidate run on one sample (sensitivity excluded) against the static QDQ run of
  its winner per sample at 1 thread, and the ratio a 2-worker search would reach if workers cost nothing.

Results go to OUT/candidate_cost.json and the tables to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autoprec.evaluate.segments import SEGMENTS, segment_count  # noqa: E402
from benchmarks.common import MODELS, peak_rss_mb  # noqa: E402
from benchmarks.performance import BUDGET, JOBS, choose_target, prepare, warm_mixes  # noqa: E402

STEPS = ("build", "create", "first_run", "other_runs", "metrics")


def static_session(model, assignment: dict[str, str]):
    """The exported static QDQ model of `assignment` in the search's session options (1 thread)."""
    import onnxruntime as ort

    from autoprec.evaluate import session_options

    proto = model.to_onnx(assignment).SerializeToString()
    return ort.InferenceSession(proto, session_options(1), providers=["CPUExecutionProvider"])


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def clocked(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of `fn()`; CPU time of this process, all its threads (less sensitive to other load)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def children_cpu() -> float:
    """CPU seconds used so far by this process's live children (the loky workers), from /proc."""
    me, total = os.getpid(), 0.0
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split() if entry.name.isdigit() else []
        except OSError:
            continue
        if fields and int(fields[1]) == me:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return total


def rss_mb() -> float:
    """Resident memory of this process now, in MiB."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def steps_of(evaluator, assignment: dict[str, str]) -> dict[str, float]:
    """One new candidate taken apart: the simulator's proto, onnxruntime's session, the runs, the metrics."""
    from autoprec.evaluate.metrics import compare

    simulator, feeds = evaluator.simulator, [evaluator.sample(i) for i in range(evaluator.num_samples)]
    times, started = {}, time.perf_counter()
    built = simulator.build(assignment)
    times["build"] = time.perf_counter() - started
    session = simulator.open(built)
    times["create"] = time.perf_counter() - started - times["build"]
    outputs = []
    times["first_run"] = timed(lambda: outputs.append(session.run(evaluator.outputs, feeds[0])))
    times["other_runs"] = timed(lambda: outputs.extend(session.run(evaluator.outputs, f) for f in feeds[1:]))
    references = evaluator.references(list(range(len(feeds))))
    times["metrics"] = timed(lambda: [compare(r, q) for ref, out in zip(references, outputs) for r, q in zip(ref, out)])
    return times


def part_micro(workdir: Path, data: Path, repeats: int) -> dict:
    evaluator, mixes, feeds = warm_mixes(workdir, data, 9 * repeats)
    half = list(range(len(feeds) // 2))
    rows: dict[str, list[float]] = {k: [] for k in ("static", "evaluate", "repeat", "batch", "one_by_one", *STEPS)}
    cpu: dict[str, list[float]] = {k: [] for k in ("static", "evaluate", "repeat", "batch", "one_by_one")}
    prebuilt = evaluator.simulator.prebuilt
    for r in range(repeats):
        candidate, other, third = mixes[9 * r : 9 * r + 3]
        batch, singles = mixes[9 * r + 3 : 9 * r + 6], mixes[9 * r + 6 : 9 * r + 9]  # 3 each
        static = static_session(evaluator.model, candidate)
        static.run(evaluator.outputs, feeds[0])
        measured = {
            "static": lambda s=static: [s.run(evaluator.outputs, f) for f in feeds],
            "evaluate": lambda a=other: evaluator.evaluate(a),
            "steps": lambda a=third: [rows[k].append(v) for k, v in steps_of(evaluator, a).items()],
            "half": lambda a=candidate: evaluator.evaluate(a, half),  # then the same candidate: its session reused
            "repeat": lambda a=candidate: evaluator.evaluate(a),
            "batch": lambda b=batch: evaluator.evaluate_many(b),  # each next session built ahead
            "one_by_one": lambda b=singles: [evaluator.evaluate(a) for a in b],
        }
        for key, fn in measured.items():
            wall, used = clocked(fn)
            if key in cpu:
                count = 3 if key in ("batch", "one_by_one") else 1
                rows[key].append(wall / count)
                cpu[key].append(used / count)
    medians = {k: statistics.median(v) for k, v in rows.items()}
    return {
        "samples": len(feeds),
        "load_average": os.getloadavg(),
        "seconds": medians,
        "ratio": statistics.median(e / s for e, s in zip(rows["evaluate"], rows["static"])),
        "ratio_repeat": statistics.median(e / s for e, s in zip(rows["repeat"], rows["static"])),
        "prebuilt": evaluator.simulator.prebuilt - prebuilt,
        "ratio_batch": statistics.median(e / s for e, s in zip(rows["batch"], rows["static"])),
        "ratio_one_by_one": statistics.median(e / s for e, s in zip(rows["one_by_one"], rows["static"])),
        "ratios": [e / s for e, s in zip(rows["evaluate"], rows["static"])],
        "cpu_ratio": {k: statistics.median(e / s for e, s in zip(v, cpu["static"])) for k, v in cpu.items()},
    }


def part_segments(workdir: Path, data: Path, repeats: int, counts: list[int]) -> dict:
    """Per segment count K (0: whole sessions): `Evaluator.evaluate` (jobs 1) of new candidates, each interleaved
    with the static QDQ run of the same candidate (wall and CPU ratios, median): "one_unit", a half-raised mix
    losing one raised unit per step (prune-like), and "random", fresh random half-raised mixes (the worst case)."""
    import numpy as np

    from autoprec.engine.units import raise_units, search_units
    from autoprec.evaluate.segments import Segmenter
    from autoprec.hardware import get_profile

    evaluator, mixes, feeds = warm_mixes(workdir, data, (2 * repeats + 1) * len(counts))
    simulator, units = evaluator.simulator, search_units(evaluator.model, get_profile("generic"))
    base = {name: "int8" for name in evaluator.model.calibration}
    results, rng = {}, np.random.default_rng(5)
    for k, count in enumerate(counts):
        simulator.segmenter = Segmenter(simulator.open, count) if count > 1 else None
        start, randoms = mixes[k * (2 * repeats + 1)], mixes[k * (2 * repeats + 1) + 1 :][: 2 * repeats]
        evaluator.evaluate(start)  # its structure verified once (the guard), as the first candidate of a search does
        raised = [u for u in units if all(start[c] == "int16" for c in u.calibration)]
        rows: dict[str, list] = {"one_unit": [], "random": []}
        for r in range(repeats):
            raised.pop(int(rng.integers(len(raised))))
            for mode, assignment in (("one_unit", raise_units(base, raised)), ("random", randoms[r])):
                static = static_session(evaluator.model, assignment)
                static.run(evaluator.outputs, feeds[0])
                static_wall, static_cpu = clocked(lambda s=static: [s.run(evaluator.outputs, f) for f in feeds])
                created = simulator.segmenter.created if simulator.segmenter else 0
                wall, cpu = clocked(lambda a=assignment: evaluator.evaluate(a))
                made = (simulator.segmenter.created if simulator.segmenter else 0) - created
                rows[mode].append((wall / static_wall, cpu / static_cpu, made, static_wall))
        kept = len(simulator.segmenter._sessions) if simulator.segmenter else 0
        results[str(count)] = {
            mode: {"wall": statistics.median(r[0] for r in rows[mode]),
                   "cpu": statistics.median(r[1] for r in rows[mode]),
                   "segments_created": statistics.mean(r[2] for r in rows[mode]),
                   "static_ms": 1000 * statistics.median(r[3] for r in rows[mode])}
            for mode in rows
        } | {"load_average": os.getloadavg(), "segment_sessions": kept, "rss_mb": rss_mb()}  # fmt: skip
    return {"samples": len(feeds), "counts": results}


def part_search(name: str, workdir: Path, data: Path, out: Path) -> dict:
    """Evaluation wall time per candidate and sample in a real search, against the winner's static run."""
    from joblib.externals.loky import get_reusable_executor

    from autoprec.api import search
    from autoprec.evaluate import evaluator as evaluator_module

    get_reusable_executor().shutdown(wait=True)
    evaluator_module._WORKERS.clear()
    target = choose_target(workdir, data)
    result = search(workdir, data=data, target=target, budget=BUDGET, jobs=JOBS, out=out / f"search-{name}", force=True)
    state = result.state
    evaluator = state.evaluator
    seconds = evaluator.seconds - state.sensitivity_seconds
    runs = evaluator.model_runs - state.sensitivity_runs  # candidate x sample runs (held-out checks included)
    winner = (result.winner or state.ranked()[0]).assignment
    static = static_session(evaluator.model, winner)
    feeds = [evaluator.sample(i) for i in state.search_indices]
    static.run(evaluator.outputs, feeds[0])
    per_sample = statistics.median(
        timed(lambda: [static.run(evaluator.outputs, f) for f in feeds]) / len(feeds) for _ in range(5)
    )
    per_run = seconds / runs
    return {
        "target": target,
        "candidates": state.used,
        "evaluation_runs": runs,
        "evaluation_seconds": seconds,
        "seconds_per_run": per_run,
        "static_per_sample": per_sample,
        "ratio_1_thread": per_run / per_sample,
        "ratio_per_worker": per_run * JOBS / per_sample,
        "load_average": os.getloadavg(),
    }


def part_replay(workdir: Path, data: Path, search_out: Path, jobs: int) -> dict:
    """That search's candidates again, in its order, each `Evaluator.evaluate` (fresh `jobs` workers) interleaved
    with the static QDQ run of the same candidate over the same samples (1 thread, warm): the ratio per
    candidate to the static run divided by `jobs` (what the same cores would take for the static model), and
    ("wide") to the static run with its samples over `jobs` threads, measured right after the candidate."""
    from joblib.externals.loky import get_reusable_executor

    from autoprec.evaluate import EvalSpec, Evaluator
    from autoprec.evaluate import evaluator as evaluator_module

    get_reusable_executor().shutdown(wait=True)
    evaluator_module._WORKERS.clear()
    evaluator = Evaluator(EvalSpec(str(workdir / "calibrated_model.onnx"), str(data)), jobs=jobs)
    base = {name: "int8" for name in evaluator.model.calibration}
    listed = sorted(json.loads((search_out / "candidates.json").read_text()), key=lambda c: c["index"])
    feeds = [evaluator.sample(i) for i in range(evaluator.num_samples)]
    evaluator.evaluate(base)  # the workers' float references, as a search computes them first
    segmenter = evaluator.simulator.segmenter  # at jobs 1 the candidates run in this process: count its segments
    created = segmenter.created if segmenter and jobs == 1 else 0
    ratios, cpu_ratios, wide = [], [], []  # wide: against the static run's samples over `jobs` threads
    for candidate in listed:
        assignment = {**base, **candidate["changes"]}
        static = static_session(evaluator.model, assignment)
        static.run(evaluator.outputs, feeds[0])
        static_wall, static_cpu = clocked(lambda s=static: [s.run(evaluator.outputs, f) for f in feeds])
        before = children_cpu()
        wall, cpu = clocked(lambda a=assignment: evaluator.evaluate(a))
        cpu += children_cpu() - before
        with ThreadPoolExecutor(jobs) as pool:
            wide_wall, wide_cpu = clocked(lambda s=static: list(pool.map(lambda f: s.run(evaluator.outputs, f), feeds)))
        ratios.append(wall / (static_wall / jobs))
        cpu_ratios.append(cpu / static_cpu)
        wide.append((wall / wide_wall, cpu / wide_cpu))
    return {"jobs": jobs, "candidates": len(listed), "median": statistics.median(ratios),
            "mean": statistics.mean(ratios), "cpu_median": statistics.median(cpu_ratios),
            "cpu_mean": statistics.mean(cpu_ratios), "load_average": os.getloadavg(), "segments": segment_count(),
            "wide_median": statistics.median(w for w, _ in wide),
            "wide_cpu_median": statistics.median(c for _, c in wide),
            "segments_per_candidate": (segmenter.created - created) / len(listed) if segmenter and jobs == 1 else None,
            "ratios": ratios, "cpu_ratios": cpu_ratios, "peak_rss_mb": peak_rss_mb()}  # fmt: skip


def part_reuse(workdir: Path, data: Path, search_out: Path, window: int = 5) -> dict:
    """What segment reuse could save in that search: per candidate (in evaluation order), the MAC share of the
    part of its graph that differs from the nearest of the `window` candidates evaluated just before it (the
    part a run fed with that candidate's cached activations would execute; `Incremental.part`)."""
    from autoprec.engine.cost import op_costs
    from autoprec.evaluate import EvalSpec, Evaluator
    from autoprec.evaluate.incremental import Incremental

    evaluator = Evaluator(EvalSpec(str(workdir / "calibrated_model.onnx"), str(data)))
    model, simulator = evaluator.model, evaluator.simulator
    base = {name: "int8" for name in model.calibration}
    listed = sorted(json.loads((search_out / "candidates.json").read_text()), key=lambda c: c["index"])
    assignments = [{**base, **c["changes"]} for c in listed]
    macs = op_costs(model, evaluator.sample(0))
    samples = [evaluator.sample(0)]
    runners = [Incremental(simulator, samples, evaluator.outputs, a, macs) for a in assignments]
    fractions = []
    for k in range(1, len(assignments)):
        built = simulator.build(assignments[k])
        fractions.append(min(runners[j].part(built).fraction for j in range(max(0, k - window), k)))
    return {"candidates": len(assignments), "window": window, "mean_part": statistics.mean(fractions),
            "median_part": statistics.median(fractions), "under_half": sum(f < 0.5 for f in fractions)}  # fmt: skip


def part_searches(workdir: Path, data: Path, out: Path) -> dict:
    """The same search (performance.py's: incremental sensitivity, budget 50, jobs 2) with candidates run as whole
    sessions and as cached segments (AUTOPREC_SEGMENTS, read by fresh workers): wall time, winner, on export."""
    from benchmarks.performance import part_search

    target, runs = choose_target(workdir, data), {}
    for segments in ("0", str(SEGMENTS)):
        os.environ["AUTOPREC_SEGMENTS"] = segments
        run = part_search(workdir, data, target, "incremental", out / f"segments-{segments}")
        run["winner"] = json.loads((out / f"segments-{segments}" / "quant_config.json").read_text())
        run["load_average"] = os.getloadavg()
        runs[segments] = run
    del os.environ["AUTOPREC_SEGMENTS"]
    return runs


def tables(results: dict) -> str:
    micro = {name: res["micro"] for name, res in results.items() if "cpu_ratio" in res.get("micro", {})}
    lines = [
        "| model | samples | load | static QDQ run | new candidate: wall / CPU | seen (other samples) | "
        "3 new one by one | 3 new, one batch (next built ahead) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in micro.items():
        c = m["cpu_ratio"]
        pairs = " | ".join(f"{m[w]:.2f}x / {c[k]:.2f}x" for w, k in (("ratio", "evaluate"), ("ratio_repeat", "repeat"),
                           ("ratio_one_by_one", "one_by_one"), ("ratio_batch", "batch")))  # fmt: skip
        lines.append(f"| {name} | {m['samples']} | {m['load_average'][0]:.1f} | {1000 * m['seconds']['static']:.0f} ms"
                     f" | {pairs} |")  # fmt: skip
    lines += ["", "| model | " + " | ".join(STEPS) + " |", "|---|" + "---|" * len(STEPS)]
    for name, m in micro.items():
        lines.append(f"| {name} | " + " | ".join(f"{1000 * m['seconds'][k]:.0f} ms" for k in STEPS) + " |")
    segmented = {name: res["segments"] for name, res in results.items() if "segments" in res}
    if segmented:
        lines += ["", "| model | K | load | static QDQ run | one-unit change: wall / CPU (segments created) | "
                  "random half-raised mix: wall / CPU (segments created) |", "|---|---|---|---|---|---|"]  # fmt: skip
        for name, seg in segmented.items():
            for count, r in seg["counts"].items():
                cells = [f"{r[m]['wall']:.2f}x / {r[m]['cpu']:.2f}x ({r[m]['segments_created']:.1f})"
                         for m in ("one_unit", "random")]  # fmt: skip
                lines.append(f"| {name} | {count if int(count) > 1 else 'whole'} | {r['load_average'][0]:.1f} | "
                             f"{r['random']['static_ms']:.0f} ms | {cells[0]} | {cells[1]} |")  # fmt: skip
    for name, res in results.items():
        for segments, run in res.get("searches", {}).items():
            lines.append(f"\n{name} search, {'whole sessions' if int(segments) < 2 else f'{segments} segments'}: "
                         f"met {run['met']}, worst on export {run['on_export']['worst']:.4f}, cost {run['cost']:.4f}, "
                         f"wall {run['wall_seconds']:.0f} s (sensitivity {run['sensitivity_seconds']:.0f} s), "
                         f"load {run['load_average'][0]:.1f}")  # fmt: skip
    searches = {name: res["search"] for name, res in results.items() if "search" in res}
    if searches:
        lines += ["", "| model | candidates | candidate-sample runs | evaluation wall | per run | static run per "
                  "sample | ratio (1 thread) | ratio x jobs |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for name, s in searches.items():
            lines.append(f"| {name} | {s['candidates']} | {s['evaluation_runs']} | {s['evaluation_seconds']:.1f} s | "
                         f"{1000 * s['seconds_per_run']:.0f} ms | {1000 * s['static_per_sample']:.0f} ms | "
                         f"{s['ratio_1_thread']:.2f}x | {s['ratio_per_worker']:.2f}x |")  # fmt: skip
    for name, res in results.items():
        for key in sorted(k for k in res if k.startswith("replay_jobs")):
            if key in res:
                r = res[key]
                cpu = f"CPU median {r.get('cpu_median', 0):.2f}x (mean {r.get('cpu_mean', 0):.2f}x) the static run's"
                wall = f"wall median {r['median']:.2f}x (mean {r['mean']:.2f}x) static / {r['jobs']}"
                wall = f"segments {r.get('segments', 0)}, {wall}"
                lines.append(
                    f"\n{name}: the search's {r['candidates']} candidates replayed, jobs {r['jobs']}: {wall}; {cpu}"
                )
        if "reuse" in res:
            r = res["reuse"]
            lines.append(f"\n{name}: {r['candidates']} candidates; the part differing from the nearest of the "
                         f"{r['window']} before: mean {100 * r['mean_part']:.0f}% of the MACs, median "
                         f"{100 * r['median_part']:.0f}%, under half for {r['under_half']}")  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--search", default="", help="comma-separated models to also run a real search on")
    parser.add_argument("--segments", default="", help="models to time one-unit and random candidates on, per K")
    parser.add_argument("--counts", default=f"0,4,{SEGMENTS},16", help="segment counts K for --segments (0: whole)")
    parser.add_argument("--searches", default="", help="models to search with whole sessions, then with segments")
    parser.add_argument("--reuse", default="", help="models whose earlier --search output to analyse for reuse")
    parser.add_argument("--out", default="/tmp/autoprec-performance")
    parser.add_argument("--tables-only", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    path = out / "candidate_cost.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    if not args.tables_only:
        for name in filter(None, args.models.split(",")):
            workdir, data = prepare(name, out / name)
            results.setdefault(name, {})["micro"] = part_micro(workdir, data, args.repeats)
            path.write_text(json.dumps(results, indent=1))
        for name in filter(None, args.segments.split(",")):
            workdir, data = prepare(name, out / name)
            counts = [int(k) for k in args.counts.split(",")]
            results.setdefault(name, {})["segments"] = part_segments(workdir, data, args.repeats, counts)
            path.write_text(json.dumps(results, indent=1))
        for name in filter(None, args.searches.split(",")):
            workdir, data = prepare(name, out / name)
            results.setdefault(name, {})["searches"] = part_searches(workdir, data, out / name)
            path.write_text(json.dumps(results, indent=1))
        for name in filter(None, args.search.split(",")):
            workdir, data = prepare(name, out / name)
            results.setdefault(name, {})["search"] = part_search(name, workdir, data, out)
            path.write_text(json.dumps(results, indent=1))
        for name in filter(None, f"{args.search},{args.reuse}".split(",")):  # and replay its candidates
            workdir, data = prepare(name, out / name)
            results.setdefault(name, {})["reuse"] = part_reuse(workdir, data, out / f"search-{name}")
            for jobs in (1, JOBS):
                key = f"replay_jobs{jobs}_segments{segment_count()}"
                results[name][key] = part_replay(workdir, data, out / f"search-{name}", jobs)
            path.write_text(json.dumps(results, indent=1))
    print(tables(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
