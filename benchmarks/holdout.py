"""Held-out benchmark: do winners hold on samples the search never saw?

Per demo model and repeat: N realistic samples (by default as many as `autoprec demo` uses) calibrate the model
and are given to the search, N more of the same kinds are an external held-out set no setting ever sees. Each
setting (no check, the default held-out check; optionally a confidence bound, both) searches at the demo target;
its winner is then scored on the external set. All settings of one model share one sensitivity pass.
With `--population P` each winner is also scored on P more samples (the same P for every split, far past any
split's: `POPULATION_START`), whose mean is the population's to a few standard errors: a small external set's
own noise can pass a winner the population fails, or the other way round. (Not magika: its pool is finite; give
it `--external` the rest of the pool instead.)
Usage: python -m benchmarks.holdout [--models vad,magika,ocr_det,layout] [--samples N] [--external E] [--repeats 1]
  [--population P]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from autoprec.calibrate import calibrate
from autoprec.cli.commands import DEMO_SAMPLES, DEMO_TARGETS, DEMO_TASK_METRICS
from autoprec.data import save_samples
from autoprec.demo import fetch_model, make_samples
from autoprec.engine.margin import per_sample
from autoprec.engine.target import OutputTarget, Target
from autoprec.evaluate import EvalSpec, Evaluator, Scores
from benchmarks.shared import search_sharing_analyses

# make_samples cycles through kinds (vad: every 4th clip near silence; ocr_det: 4 image kinds; magika: 15 file
# kinds); the external set starts a whole number of cycles after the search set, so it holds the same kinds
PERIOD = {"vad": 4, "ocr_det": 4, "magika": 15}
# magika's files are a finite pool (384 files of 15 kinds) whose small kinds (idlelib .def, dist-info, venv scripts:
# the fragile plain texts) run out after the first ~60 files: a later window of 100 files holds 8 kinds where the
# first holds 13. Its search and external files alternate over the first 2N instead (with --external E, E external
# files spread evenly over the first N + E), so both sides hold every kind
INTERLEAVED = {"magika"}
POPULATION_START = 100_000  # a whole number of vad / ocr_det cycles
SETTINGS = {
    "no check": {"holdout": 0},
    "default": {},
    "confidence 0.9": {"holdout": 0, "confidence": 0.9},
    "held-out + confidence 0.9": {"confidence": 0.9},
}


def run_model(
    name: str,
    samples: int,
    repeat: int,
    budget: int,
    settings: list[str],
    work: Path,
    unseen: int | None = None,
    population: int = 0,
) -> list[dict]:
    """Every setting on one model and one (search, external held-out) split; one row per setting."""
    folder = work / f"{name}-{repeat}"
    workdir = folder / "model_output"
    if not workdir.exists():  # a --work folder of an earlier run keeps its data, model and analyses
        offset = -(-samples // PERIOD.get(name, 1)) * PERIOD.get(name, 1)
        count = unseen or samples
        if name in INTERLEAVED:  # the first N + E files, the E external ones spread evenly: with E = N the odd ones
            total = samples + count  # (split 0) or the even ones (split 1)
            step = total // count
            outside = {k * total // count + (step - 1 if repeat % 2 == 0 else 0) for k in range(count)}
            everything = make_samples(name, total)
            search = [s for i, s in enumerate(everything) if i not in outside]
            held = [s for i, s in enumerate(everything) if i in outside]
        else:
            everything = make_samples(name, 2 * offset * (repeat + 1))[2 * offset * repeat :]
            search, held = everything[:samples], everything[offset : offset + count]
        save_samples(held, folder / "external")
        workdir = demo_workdir_from(name, search, folder)
    task = DEMO_TASK_METRICS.get(name)
    external = Evaluator(
        EvalSpec(str(workdir / "calibrated_model.onnx"), str(folder / "external"), task_metric=task), jobs=2
    )
    judge = _population(name, workdir, work, population) if population and name not in INTERLEAVED else None
    rows, int16 = [], None
    for setting in settings:
        out = folder / setting.replace(" ", "_")
        result = search_sharing_analyses(
            folder / "analyses",
            out,
            workdir,
            target=DEMO_TARGETS[name],
            budget=budget,
            task_metric=task,
            **SETTINGS[setting],
        )
        state, winner = result.state, result.winner
        if int16 is None:  # the ceiling, once per split: does any mix hold?
            int16 = external.evaluate(state.baselines["all-int16"])
        scores = external.evaluate(winner.assignment)
        summary = json.loads((out / "result.json").read_text())
        rows.append({
            "model": name, "repeat": repeat, "setting": setting, "met": result.met, "cost": winner.cost,
            "evaluations": state.used, "checks": len((summary["holdout"] or {}).get("checked", [])),
            "failed_checks": len((summary["holdout"] or {}).get("failed", [])),
            "tightened": len((summary["holdout"] or {}).get("tightened_by", [])),
            "search_worst": _worst(state.goal, winner.scores),
            "external_worst": _worst(state.goal, scores),
            "holds": state.goal.passes(scores), "int16_external_worst": _worst(state.goal, int16),
            "int16_holds": state.goal.passes(int16), "advice": summary["advice"], "seconds": round(result.seconds, 1),
            **(judge(state.goal, winner.assignment) if judge else {}),
        })  # fmt: skip
    return rows


def _worst_output(goal: Target, scores: Scores) -> OutputTarget:
    """The output farthest from its target."""
    return max(goal.outputs, key=lambda t: t.gap(scores))


def _worst(goal: Target, scores: Scores) -> float:
    """The value of the output farthest from its target (the lowest for higher-is-better metrics)."""
    return _worst_output(goal, scores).value(scores)


def _population(name: str, workdir: Path, work: Path, size: int):
    """A judge of winners on `size` population samples of `name` (written once per work folder): its worst output's
    value and standard error, and whether it meets the goal."""
    folder = work / f"{name}-population-{size}"
    if not folder.exists():
        save_samples(make_samples(name, size, start=POPULATION_START), folder)
    evaluator = Evaluator(
        EvalSpec(str(workdir / "calibrated_model.onnx"), str(folder), task_metric=DEMO_TASK_METRICS.get(name)), jobs=2
    )

    def judge(goal: Target, assignment: dict[str, str]) -> dict:
        scores = evaluator.evaluate(assignment)
        worst = _worst_output(goal, scores)
        values = per_sample(worst, scores)
        error = float(np.std(values, ddof=1) / np.sqrt(values.size))
        holds = goal.passes(scores)
        return {"population_worst": worst.value(scores), "population_se": error, "holds_population": holds}

    return judge


def demo_workdir_from(name: str, samples: list, folder: Path) -> Path:
    """A calibrated model_output folder of `name` on exactly these samples."""
    save_samples(samples, folder / "search")
    calibrate(fetch_model(name), folder / "search", folder / "model_output")
    return folder / "model_output"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="vad,magika,ocr_det,layout")
    parser.add_argument("--samples", type=int, help="search samples (default: the demo's)")
    parser.add_argument("--external", type=int, help="external held-out samples (default: as many as --samples)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--budget", type=int, default=50)
    parser.add_argument("--settings", default="no check,default", help=f"of: {', '.join(SETTINGS)}")
    parser.add_argument("--population", type=int, default=0, help="also judge winners on this many more samples")
    parser.add_argument("--work", type=Path, help="work folder (default: a new temporary one)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="autoprec-holdout-"))
    population = f" holds on {args.population} more (worst ± se) |" if args.population else ""
    print("| model | N | split | setting | met | cost (vs no check) | evaluations | checks (failed, tightened) | worst "
          f"output: search / external held-out | holds on external | all-int16 on external |{population}")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if args.population else ""))
    for name in args.models.split(","):
        samples = args.samples or DEMO_SAMPLES[name]
        for repeat in range(args.repeats):
            rows = run_model(
                name, samples, repeat, args.budget, args.settings.split(","), work, args.external, args.population
            )
            holds = "holds_population" if "holds_population" in rows[0] else "holds"  # the larger set decides
            unchecked = next((r for r in rows if r["setting"] == "no check" and r[holds] and r["met"]), None)
            for row in rows:
                ratio = f" ({row['cost'] / unchecked['cost']:.2f}x)" if unchecked and unchecked["cost"] > 0 else ""
                print(
                    f"| {name} | {samples} | {repeat} | {row['setting']} | {row['met']} | {row['cost']:.4f}{ratio} "
                    f"| {row['evaluations']} | {row['checks']} ({row['failed_checks']}, {row['tightened']}) | "
                    f"{row['search_worst']:.5f} / {row['external_worst']:.5f} | {_holds(row)} | "
                    f"{row['int16_external_worst']:.5f} ({'holds' if row['int16_holds'] else 'misses'}) |"
                    + _population_cell(row),
                    flush=True,
                )
                with open(work / "rows.jsonl", "a") as log:
                    log.write(json.dumps({**row, "samples": samples}) + "\n")


def _population_cell(row: dict) -> str:
    if "holds_population" not in row:
        return ""
    verdict = "yes" if row["holds_population"] else "**no**"
    return f" {verdict} ({row['population_worst']:.5f} ± {row['population_se']:.5f}) |"


def _holds(row: dict) -> str:
    """Whether the winner meets the target on the external set; without a winner, whether the best-so-far would."""
    holds = "yes" if row["holds"] else "**no**"
    return holds if row["met"] else f"no winner (best so far: {holds})"


if __name__ == "__main__":
    main()
