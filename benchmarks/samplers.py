"""Which Optuna sampler finds the lower cost in the same budget? (issue: measured, not guessed)

For each model and sampler: the `baselines, threshold_sweep, optuna, prune` pipeline with the same
budget; the sensitivity pass is shared (copied cache), so only the sampler differs.
Usage: python -m benchmarks.samplers [--models magika,layout] [--budget 40] [--samples 4]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from benchmarks.shared import demo_workdir, search_sharing_analyses

TARGETS = {"magika": 0.999, "layout": 0.98, "vad": 0.87, "ocr_det": 0.99}
SAMPLERS = ("tpe", "nsga2", "random")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="magika,layout")
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--samples", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="autoprec-samplers-"))
    print("| model | target | sampler | evaluations | winner cost | entries | optuna candidates (passing) |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        workdir = demo_workdir(name, args.samples, work / name)
        for sampler in SAMPLERS:
            result = search_sharing_analyses(
                work / name / "cache", work / name / sampler, workdir, target=TARGETS[name], budget=args.budget,
                strategies=["baselines", "threshold_sweep", "optuna", "prune"],
                options={"optuna.sampler": sampler, "optuna.share": "0.6"},
            )  # fmt: skip
            mine = [c for c in result.candidates if c.strategy == "optuna"]
            best = result.best
            print(
                f"| {name} | {TARGETS[name]} | {sampler} | {result.state.used} | "
                f"{best.cost:.5f} | {len(best.changes())} | {len(mine)} ({sum(c.passed for c in mine)}) |"
                if best
                else f"| {name} | {TARGETS[name]} | {sampler} | {result.state.used} | none | - | {len(mine)} (0) |"
            )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
