"""What the ablation and sampler benchmarks share: a calibrated demo model, and searches that all reuse
one sensitivity pass (so that only the strategy settings differ between runs)."""

from __future__ import annotations

import shutil
from pathlib import Path

from autoprec.api import search
from autoprec.calibrate import CalibrationSettings, calibrate
from autoprec.data import save_samples
from autoprec.demo import fetch_model, make_samples
from autoprec.engine.driver import SearchResult


def demo_workdir(name: str, samples: int, folder: Path, settings: CalibrationSettings | None = None) -> Path:
    """A calibrated model_output folder of demo model `name` with `samples` realistic samples."""
    save_samples(make_samples(name, samples), folder / "data")
    calibrate(fetch_model(name), folder / "data", folder / "model_output", settings)
    return folder / "model_output"


def search_sharing_analyses(cache: Path, out: Path, workdir: Path, **kwargs) -> SearchResult:
    """`autoprec.api.search` into `out` (an earlier run's there is replaced), seeded with the analysis caches of
    the first run in `cache`."""
    shutil.rmtree(out, ignore_errors=True)
    if cache.exists():
        shutil.copytree(cache, out)
    result = search(workdir, out=out, jobs=2, **kwargs)
    if not cache.exists():
        cache.mkdir()
        for path in out.glob("sensitivity-*.json"):
            shutil.copy(path, cache)
    return result
