"""Shared fixtures: real demo models calibrated once per session, and a CLI runner.

Every model here is a real, trained network from a pinned wheel (see autoprec.demo) fed with
realistic inputs; each is calibrated once into a session temp folder with few samples so the
whole suite stays fast on two cores, with symmetric max calibration (the default before `auto`), so
the tests' numbers do not depend on which method `auto` picks (tests/test_calibration_auto.py tests auto).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autoprec import demo
from autoprec.calibrate import CalibrationSettings, calibrate
from autoprec.data import save_samples

# Samples per model: enough for every output to be exercised, few enough to stay fast.
NUM_SAMPLES = {"layout": 4, "vad": 4, "magika": 4}


def write_data(name: str, num_samples: int, folder: Path) -> Path:
    """HMCT calibration data (<input>/<i>.npy) of demo model `name` in `folder`."""
    save_samples(demo.make_samples(name, num_samples), folder)
    return folder


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory):
    """name -> HMCT data folder of the realistic demo samples (written once per session)."""
    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            cache[name] = write_data(name, NUM_SAMPLES[name], tmp_path_factory.mktemp(f"{name}-data") / "data")
        return cache[name]

    return get


def _calibrated(tmp_path_factory, demo_data, name: str) -> Path:
    out = tmp_path_factory.mktemp(f"{name}-work") / "model_output"
    calibrate(demo.fetch_model(name), demo_data(name), out, CalibrationSettings(method="max"))
    return out


@pytest.fixture(scope="session")
def layout_workdir(tmp_path_factory, demo_data) -> Path:
    """model_output folder of the layout detector: calibrated_model.onnx + calibration_data/ (4 pages)."""
    return _calibrated(tmp_path_factory, demo_data, "layout")


@pytest.fixture(scope="session")
def vad_workdir(tmp_path_factory, demo_data) -> Path:
    """model_output folder of silero VAD (4 one-second clips, one of them near silence)."""
    return _calibrated(tmp_path_factory, demo_data, "vad")


@pytest.fixture(scope="session")
def magika_workdir(tmp_path_factory, demo_data) -> Path:
    """model_output folder of magika (int32 byte tokens of 4 real files)."""
    return _calibrated(tmp_path_factory, demo_data, "magika")


class CliResult(tuple):
    """(exit code, stderr text) of one `autoprec` run; `.stdout` holds what it printed to stdout."""

    stdout: str

    def __new__(cls, code: int, stderr: str, stdout: str) -> CliResult:
        result = super().__new__(cls, (code, stderr))
        result.stdout = stdout
        return result


def cli_env() -> dict[str, str]:
    """The environment of a user piping autoprec's output to a log (no colour, default width)."""
    env = {k: v for k, v in os.environ.items() if k not in {"FORCE_COLOR", "CLICOLOR_FORCE", "TTY_COMPATIBLE"}}
    env["COLUMNS"] = "80"  # what rich assumes when COLUMNS is unset and stderr is not a terminal
    env["NO_COLOR"] = "1"
    return env


@pytest.fixture
def run_cli(tmp_path):
    """Run `python -m autoprec.cli ARGS...` in a subprocess (cwd: tmp_path unless `cwd=`)."""

    def run(*args: str | os.PathLike, cwd: Path | None = None, timeout: float = 300) -> CliResult:
        proc = subprocess.run(
            [sys.executable, "-m", "autoprec.cli", *map(str, args)],
            cwd=cwd or tmp_path,
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return CliResult(proc.returncode, proc.stderr, proc.stdout)

    return run
