"""The markdown tables of a benchmark run (one function per table group)."""

from __future__ import annotations

from benchmarks.common import BUDGET, PARTS, SEARCH_JOBS


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def _speed_tables(speed: dict[str, dict]) -> list[str]:
    lines: list[str] = []
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
    return lines


def _memory_tables(memory: dict[str, dict]) -> list[str]:
    lines: list[str] = []
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
    return lines


def _seconds_tables(seconds: dict[str, dict]) -> list[str]:
    lines: list[str] = []
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
    return lines


def _calibrate_tables(cal: dict[str, dict]) -> list[str]:
    lines: list[str] = []
    lines += [
        "### Calibration (autoprec.calibrate, max calibrator, per-channel weights)",
        "",
        "| model | samples | seconds | calibration nodes (weights) |",
        "|---|---:|---:|---:|",
    ]
    for m, c in cal.items():
        for count, info in c.items():
            lines.append(f"| {m} | {count} | {info['seconds']:.1f} | {info['calibration_nodes']} ({info['weights']}) |")
    lines.append("")
    return lines


def _baselines_tables(base: dict[str, dict]) -> list[str]:
    lines: list[str] = []
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
    return lines


def _search_tables(search: dict[str, dict]) -> list[str]:
    lines: list[str] = []
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
    return lines


SECTIONS = (
    ("speed", _speed_tables),
    ("memory", _memory_tables),
    ("seconds", _seconds_tables),
    ("calibrate", _calibrate_tables),
    ("baselines", _baselines_tables),
    ("search", _search_tables),
)


def tables(results: dict[str, dict]) -> str:
    """Every table group for which `results` (model -> part -> numbers) holds data."""
    lines: list[str] = []
    for key, render in SECTIONS:
        found = {m: r[key] for m, r in results.items() if key in r}
        if found:
            lines += render(found)
    return "\n".join(lines)


def _export_cell(export: dict | None) -> str:
    if not export:
        return "-"
    return f"{export['worst']:.5f} ({'passes' if export['passes'] else 'FAILS'})"
