"""What every benchmark part shares: the settings, timing and memory helpers, the engine version."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
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


def machine() -> str:
    import onnx
    import onnxruntime as ort

    return (
        f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), Python {platform.python_version()}, "
        f"onnxruntime {ort.__version__}, onnx {onnx.__version__}, numpy {np.__version__}"
    )


def prepare(name: str, work: Path, samples: int) -> Path:
    """Demo model + realistic samples in work/demo (written every run; cheap and deterministic)."""
    from autoprec.demo import write_demo_data

    needed = max(samples, CALIBRATION_SAMPLES, LAYOUT_CALIBRATION_SAMPLES if name == "layout" else 0)
    model, _ = write_demo_data(name, work / "demo", needed, force=True)
    return model
