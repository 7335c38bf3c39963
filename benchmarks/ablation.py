"""Ablation: the winner's cost with the default pipeline and with each strategy left out.

Same model, data, target and budget for every row; the sensitivity pass is measured once per model and
copied into each run's folder, so only the strategy list differs. Includes an `hmct`-profile case where
all-int16 misses the target and only error compensation can reach it.
Usage: python -m benchmarks.ablation [--cases vad,magika,ocr_det,layout,ocr_det_hmct] [--budget 50]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from autoprec.engine.settings import DEFAULT_STRATEGIES
from benchmarks.shared import demo_workdir, search_sharing_analyses

# case -> (model, samples, profile, target): targets between all-int8 and the profile's all-int16
# (benchmarks/RESULTS.md), except ocr_det_hmct, where all-int16 under hmct misses and real-int16 meets it.
CASES = {
    "vad": ("vad", 8, "generic", 0.87),
    "magika": ("magika", 8, "generic", 0.99),
    "ocr_det": ("ocr_det", 4, "generic", 0.99),
    "layout": ("layout", 4, "generic", 0.97),
    "ocr_det_hmct": ("ocr_det", 4, "hmct", 0.999),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--budget", type=int, default=50)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="autoprec-ablation-"))
    print("| case | profile | target | strategies | met | winner cost | entries | evaluations | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case in args.cases.split(","):
        name, samples, profile, target = CASES[case]
        workdir = demo_workdir(name, samples, work / case)
        variants = [("default", DEFAULT_STRATEGIES)] + [
            (f"without {s}", tuple(x for x in DEFAULT_STRATEGIES if x != s)) for s in DEFAULT_STRATEGIES[1:]
        ]
        for label, strategies in variants:
            started = time.perf_counter()
            result = search_sharing_analyses(
                work / case / "cache", work / case / label.replace(" ", "_"), workdir,
                target=target, budget=args.budget, profile=profile, strategies=strategies,
            )  # fmt: skip
            seconds = time.perf_counter() - started
            winner = result.winner
            print(
                f"| {case} | {profile} | {target} | {label} | {'yes' if result.met else 'no'} | "
                f"{winner.cost:.4f} | {len(winner.changes())} | {result.state.used} | {seconds:.0f} |",
                flush=True,
            )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
