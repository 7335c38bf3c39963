"""Calibration / evaluation data: HMCT folder layout, one .npz, or a folder of .npz files.

HMCT layout: `<root>/<input_name>/<i>.npy`, one sample per file, sorted numerically and paired across
the inputs by file name. A single `.npz` holds one array per input with a leading sample axis (or one
sample). A folder of `.npz` files holds one sample per file. Everything is checked against the model's
inputs (names, shapes, dtypes, finiteness, the dtype's range) and fails with a one-line `UserError`.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

import numpy as np
import onnx
from onnx import helper

from autoprec.errors import UserError

Sample = dict[str, np.ndarray]


@dataclass(frozen=True)
class InputSpec:
    """A model input: name, shape (None for a dynamic dim) and numpy dtype."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype


def model_inputs(model: onnx.ModelProto) -> list[InputSpec]:
    """The graph inputs that must be fed (initializers listed as inputs are not)."""
    inits = {i.name for i in model.graph.initializer}
    specs = []
    for value in model.graph.input:
        if value.name in inits:
            continue
        tensor = value.type.tensor_type
        if not value.type.HasField("tensor_type") or tensor.elem_type == onnx.TensorProto.UNDEFINED:
            raise UserError(f"model input '{value.name}' has no tensor element type; re-export the model typed")
        shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
        specs.append(InputSpec(value.name, shape, np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type))))
    return specs


def load_samples(path: str | os.PathLike, inputs: list[InputSpec], num_samples: int | None = None) -> list[Sample]:
    """Load and validate samples for a model with `inputs`; at most `num_samples` of them."""
    path = Path(path)
    if num_samples is not None and num_samples < 1:
        raise UserError(f"--num-samples must be at least 1, got {num_samples}")
    if not path.exists():
        raise UserError(f"{path}: no such data file or folder; pass calibration data (HMCT folder or .npz)")
    if path.is_file():
        samples = _load_npz_file(path)
    elif any(p.suffix == ".npz" for p in path.iterdir()):
        samples = [_single(_read_npz(p), p) for p in sorted(path.glob("*.npz"), key=_numeric_key)]
    else:
        samples = _load_hmct(path, inputs)
    if not samples:
        raise UserError(f"{path}: holds no samples; add at least one sample per model input")
    samples = samples[:num_samples] if num_samples else samples
    return [_validate(sample, inputs, path, i) for i, sample in enumerate(samples)]


def save_samples(samples: list[Sample], folder: str | os.PathLike) -> None:
    """Write samples in HMCT layout: `<folder>/<input_name>/<i>.npy`."""
    folder = Path(folder)
    for i, sample in enumerate(samples):
        for name, array in sample.items():
            target = folder / _folder_name(name)
            target.mkdir(parents=True, exist_ok=True)
            np.save(target / f"{i}.npy", array, allow_pickle=False)


def foreign_entries(folder: Path) -> list[Path]:
    """What in `folder` `save_samples` did not write (anything but real folders and .npy files; `folder` itself when
    it is not a real folder): what replacing `folder` would destroy of the user's."""
    if not os.path.lexists(folder):
        return []
    if folder.is_symlink() or not folder.is_dir():
        return [folder]
    return [p for p in folder.rglob("*") if p.is_symlink() or not (p.is_dir() or (p.is_file() and p.suffix == ".npy"))]


def _folder_name(input_name: str) -> str:
    """The data folder of an input: percent-encoded (injective; never `.`, `..` or a path with a separator)."""
    encoded = quote(input_name, safe="")  # letters, digits and -._~ stay; '%' itself becomes %25
    return encoded.replace(".", "%2E") if set(encoded) <= {"."} else encoded


def _legacy_folder_name(input_name: str) -> str:
    """The folder name autoprec wrote before percent-encoding."""
    return input_name.replace("/", "_").replace(":", "_")


def _input_folder(root: Path, name: str, names: list[str]) -> Path:
    """The folder holding input `name`'s samples: its encoded name; else, where no other input could mean the
    same folder, its legacy name or its raw name (HMCT tools write raw names)."""
    folder = root / _folder_name(name)
    if folder.is_dir():
        return folder
    for candidate in (_legacy_folder_name(name), name):
        if "/" in candidate or set(candidate) <= {"."}:
            continue  # would leave the data folder
        if any(candidate in (_folder_name(n), _legacy_folder_name(n), n) for n in names if n != name):
            continue
        if (root / candidate).is_dir():
            return root / candidate
    return folder


def _numbered(path: Path) -> bool:
    """True for a sample file named by its number: `<digits>.npy` or `<digits>.npz`."""
    return path.stem.isascii() and path.stem.isdigit()


def _numeric_key(path: Path) -> tuple[int, str]:
    """Numbered files in numeric order (2 before 10), then any others by name."""
    return (int(path.stem) if _numbered(path) else 1 << 62, path.stem)


def _load_hmct(root: Path, inputs: list[InputSpec]) -> list[Sample]:
    names = [spec.name for spec in inputs]
    folders = [_input_folder(root, name, names) for name in names]
    columns = [_sample_files(root, folder, name) for folder, name in zip(folders, names)]
    _check_paired(root, dict(zip(folders, columns)))
    count = len(columns[0]) if columns else 0
    return [{name: _read_npy(column[i]) for name, column in zip(names, columns)} for i in range(count)]


def _sample_files(root: Path, folder: Path, input_name: str) -> list[Path]:
    """The `<i>.npy` files of input `input_name`'s folder, in numeric order; other .npy names are refused."""
    if not folder.is_dir():
        raise UserError(f"{root}: no folder for model input '{input_name}'; expected {folder}/0.npy, 1.npy, ...")
    files = sorted(folder.glob("*.npy"), key=_numeric_key)
    stray = next((f for f in files if not _numbered(f)), None)
    if stray is not None:
        raise UserError(f"{stray}: not a sample file name; name an input's samples 0.npy, 1.npy, ...")
    return files


def _check_paired(root: Path, columns: dict[Path, list[Path]]) -> None:
    """Every input folder holds the same sample file names: samples pair up by name, never by position."""
    first, reference = next(iter(columns.items()), (root, []))
    expected = {f.name for f in reference}
    for folder, files in columns.items():
        odd = sorted({f.name for f in files} ^ expected, key=lambda name: _numeric_key(Path(name)))
        if odd:
            has, lacks = (first, folder) if odd[0] in expected else (folder, first)
            raise UserError(
                f"{root}: sample file {odd[0]} is in {has.name}/ but not in {lacks.name}/; "
                "give every input folder the same sample files 0.npy, 1.npy, ..."
            )


def _read_npy(path: Path) -> np.ndarray:
    """A plain .npy array; its header is checked against the file's size before anything is allocated."""
    try:
        with open(path, "rb") as file:
            _check_header(file, path.stat().st_size, str(path))
        return np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as exc:
        raise UserError(f"{path}: corrupt .npy file ({exc}); write it again with numpy.save") from exc
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc})") from exc


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a .npz archive; every member's header is checked before anything is allocated."""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.filename.endswith(".npy"):
                    with archive.open(info) as member:
                        _check_header(member, info.file_size, f"{path}: member {info.filename}")
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (ValueError, EOFError, OSError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: not a readable .npz archive ({exc})") from exc


def _check_header(file: BinaryIO, size: int, where: str) -> None:
    """The .npy header at the start of `file` (of `size` bytes) is readable, holds no Python objects, and
    declares exactly the bytes that follow it (a header declaring terabytes is refused before allocating)."""
    try:
        version = np.lib.format.read_magic(file)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else (
            np.lib.format.read_array_header_2_0)  # fmt: skip
        shape, _, dtype = read_header(file)
    except (ValueError, EOFError, SyntaxError, TypeError) as exc:
        raise UserError(f"{where}: corrupt .npy data (unreadable header); write it again with numpy.save") from exc
    if dtype.hasobject:
        raise UserError(f"{where}: holds pickled objects, which autoprec never loads; save plain arrays")
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    present = size - file.tell()
    if declared != present:
        raise UserError(
            f"{where}: corrupt .npy data (its header declares {declared} bytes of data, the file holds {present}); "
            "write it again with numpy.save"
        )


def _single(arrays: dict[str, np.ndarray], path: Path) -> Sample:
    if not arrays:
        raise UserError(f"{path}: empty archive; store one array per model input")
    return arrays


def _load_npz_file(path: Path) -> list[Sample]:
    if path.suffix != ".npz":
        raise UserError(f"{path}: data must be an HMCT folder, a .npz file or a folder of .npz files")
    arrays = _single(_read_npz(path), path)
    counts = {name: len(a) if a.ndim else 0 for name, a in arrays.items()}
    count = min(counts.values())
    if len(set(counts.values())) > 1:
        raise UserError(f"{path}: arrays have different leading (sample) sizes {counts}; stack samples on axis 0")
    return [{name: a[i] for name, a in arrays.items()} for i in range(count)]


def _validate(sample: Sample, inputs: list[InputSpec], source: Path, index: int) -> Sample:
    checked = {}
    for spec in inputs:
        if spec.name not in sample:
            raise UserError(f"{source}: sample {index} has no data for model input '{spec.name}'")
        array = sample[spec.name]
        if array.ndim != len(spec.shape) or any(
            want is not None and want != got for want, got in zip(spec.shape, array.shape)
        ):
            want = "x".join("?" if d is None else str(d) for d in spec.shape)
            raise UserError(
                f"{source}: sample {index} of input '{spec.name}' "
                f"has shape {list(array.shape)}; the model wants [{want}]"
            )
        checked[spec.name] = _cast(array, spec, source, index)
    return checked


def _cast(array: np.ndarray, spec: InputSpec, source: Path, index: int) -> np.ndarray:
    """`array` in the model's dtype; refused when its dtype or any of its values does not fit that dtype."""
    where = f"{source}: sample {index} of input '{spec.name}'"
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise UserError(f"{where} contains NaN or Inf; clean the data")
    if spec.dtype.kind not in "fiub":
        if array.dtype != spec.dtype:
            raise UserError(f"{where} has dtype {array.dtype}, the model wants {spec.dtype}")
        return array
    if array.dtype.kind not in ("fiub" if spec.dtype.kind == "f" else "iub"):
        wanted = spec.dtype if spec.dtype.kind == "f" else f"integer {spec.dtype}"
        raise UserError(f"{where} has dtype {array.dtype}, the model wants {wanted}")
    _check_range(array, spec.dtype, where)
    return array.astype(spec.dtype, copy=False)


def _check_range(array: np.ndarray, dtype: np.dtype, where: str) -> None:
    """Refuse values the cast to `dtype` would not keep (floats overflowing to Inf, integers wrapping around)."""
    if not array.size:
        return
    low, high = _limits(dtype)
    smallest, largest = array.min().item(), array.max().item()
    if smallest < low or largest > high:
        worst = smallest if smallest < low else largest
        shown = f"{worst:g}" if isinstance(worst, float) else str(worst)
        raise UserError(f"{where} has values beyond {dtype}'s range ({shown}); scale or clip them")


def _limits(dtype: np.dtype) -> tuple[float, float]:
    """The smallest and largest value of a numeric dtype, as Python numbers (compared exactly, without casts)."""
    if dtype.kind == "b":
        return 0, 1
    if dtype.kind == "f":
        return float(np.finfo(dtype).min), float(np.finfo(dtype).max)
    return np.iinfo(dtype).min, np.iinfo(dtype).max
