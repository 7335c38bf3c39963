"""Loading ONNX models safely, with one-line errors for every way a user's file can be wrong."""

from __future__ import annotations

import errno
import json
import math
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from autoprec.errors import UserError


def load_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Load an ONNX model (with its external data, which must stay inside the model's folder)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file; pass the path of an .onnx model")
    if not path.is_file():
        raise UserError(f"{path}: is a folder, not an .onnx model file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError, OSError) as exc:
        raise UserError(f"{path}: not a readable ONNX model ({_first_line(exc)}); re-export it") from exc
    if not model.graph.node or not model.opset_import:
        raise UserError(f"{path}: not an ONNX model (no graph nodes); re-export it")
    if not model.graph.output:
        raise UserError(f"{path}: the model has no outputs, so there is nothing to compare; re-export it with outputs")
    _check_external_data(model, path.parent.resolve())
    try:
        onnx.load_external_data_for_model(model, str(path.parent))
    except (OSError, ValueError, onnx.checker.ValidationError) as exc:
        raise UserError(f"{path}: cannot read its external data ({_first_line(exc)})") from exc
    return model


def _check_external_data(model: onnx.ModelProto, folder: Path) -> None:
    for tensor in onnx.external_data_helper._get_all_tensors(model):
        if not onnx.external_data_helper.uses_external_data(tensor):
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (folder / location).resolve()
        if not target.is_relative_to(folder):
            raise UserError(
                f"external data '{location}' of tensor '{tensor.name}' lies outside the model's folder; "
                "refusing to read it (move the data next to the model)"
            )
        if not target.is_file():
            raise UserError(
                f"external data file '{location}' of tensor '{tensor.name}' is missing; put it next to the model"
            )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


WRITE_ERRORS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
                errno.EPERM: "permission denied"}  # fmt: skip
IN_THE_WAY = (errno.ENOTDIR, errno.EEXIST, errno.ENOENT)  # a file on the path, or a folder that takes no new files


@contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Turn a failed write of `path` (full disk, read-only folder, no permission, a file on its path, a folder that
    takes no new files such as /proc) into a one-line UserError."""
    try:
        yield
    except OSError as exc:
        if exc.errno in WRITE_ERRORS:
            raise UserError(
                f"cannot write {path}: {WRITE_ERRORS[exc.errno]}; free space or choose a writable output folder"
            ) from exc
        why = _in_the_way(Path(path), exc) if exc.errno in IN_THE_WAY else None
        if why is None:
            raise
        raise UserError(f"cannot create {path}: {why}; choose another output folder") from exc


def _in_the_way(path: Path, exc: OSError) -> str | None:
    """What kept `path` from being created: a file among its parents, or the existing folder the failed call
    tried to create an entry in (ENOENT: /proc, /sys); None when the failure has another cause."""
    for parent in reversed(path.parents):
        if os.path.lexists(parent) and not parent.is_dir():
            return f"{parent} {_not_a_folder(parent)}"
    if exc.errno != errno.ENOENT or exc.filename is None or os.path.lexists(path):
        return None
    folder = next((p for p in path.parents if p.is_dir()), None)
    tried_in = Path(os.fsdecode(exc.filename)).parent
    if folder is None or os.path.abspath(tried_in) != os.path.abspath(folder):
        return None
    return f"{folder} takes no new files"


def _not_a_folder(path: Path) -> str:
    return "is a file" if path.is_file() else "is not a folder"


@contextmanager
def output_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Create `folder` (and its missing parents) for a command's outputs, refusing it in one line if a file or the
    file system is in the way; on the way out, remove the folders it created that stayed empty (a run refused or
    failed later leaves nothing behind)."""
    folder = Path(folder)
    if os.path.lexists(folder) and not folder.is_dir():
        raise UserError(f"{folder} {_not_a_folder(folder)}; choose another output folder")
    created = [p for p in (folder, *folder.parents) if not os.path.lexists(p)]
    try:
        with writing(folder):
            folder.mkdir(parents=True, exist_ok=True)
        yield folder
    finally:
        for path in created:  # innermost first; only if empty
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()


def check_output_file(path: Path, force: bool) -> None:
    """Refuse up front to write a file over a folder, or over an existing file without `force`."""
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a file; choose another -o")
    if path.exists() and not force:
        raise UserError(f"{path} exists; pass --force to replace it or choose another -o")


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Write through a temp file in the same folder renamed into place; the temp file never survives a failure."""
    with writing(path):
        tmp = str(path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"))  # default permissions, unlike mkstemp
        try:
            write(tmp)
            with open(tmp, "rb+") as written:
                os.fsync(written.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def save_model(model: onnx.ModelProto, path: str | os.PathLike) -> None:
    """Write a model atomically (a temp file renamed into place)."""
    _atomic_write(Path(path), lambda tmp: onnx.save(model, tmp))


NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def strict(data: object) -> object:
    """`data` with every non-finite float replaced by the string "NaN", "Infinity" or "-Infinity" (strict JSON
    has no such numbers; `restore` turns them back)."""
    if isinstance(data, float) and not math.isfinite(data):
        return "NaN" if math.isnan(data) else ("Infinity" if data > 0 else "-Infinity")
    if isinstance(data, dict):
        return {k: strict(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [strict(v) for v in data]
    return data


def restore(data: object) -> object:
    """The inverse of `strict`: "NaN", "Infinity" and "-Infinity" strings back to floats."""
    if isinstance(data, str):
        return NON_FINITE.get(data, data)
    if isinstance(data, dict):
        return {k: restore(v) for k, v in data.items()}
    if isinstance(data, list):
        return [restore(v) for v in data]
    return data


def dumps_json(data: object, indent: int | None = None) -> str:
    """Strict JSON text of `data` (non-finite floats as strings, see `strict`)."""
    return json.dumps(strict(data), indent=indent, allow_nan=False)


def read_json(path: str | os.PathLike) -> object:
    """JSON written by `save_json`, non-finite values restored to floats."""
    return restore(json.loads(Path(path).read_text()))


def read_user_json(path: Path, what: str) -> object:
    """A JSON file the user gave (`what` names it, e.g. "quant_config JSON file"); a one-line UserError when it
    is missing, a folder, unreadable, not UTF-8 text or not JSON."""
    if not path.is_file():
        raise UserError(f"{path}: {'is a folder' if path.is_dir() else 'no such file'}; give a {what}")
    try:
        return json.loads(path.read_bytes())
    except OSError as exc:
        raise UserError(f"{path}: cannot read it ({exc.strerror}); give a readable {what}") from exc
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not a JSON file (not UTF-8 text); give a {what}") from exc
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); give a {what}") from exc


def save_json(data: object, path: str | os.PathLike) -> None:
    """Write strict JSON atomically (a temp file renamed into place)."""
    save_text(dumps_json(data, indent=2), path)


def save_text(text: str, path: str | os.PathLike) -> None:
    """Write UTF-8 text atomically (a temp file renamed into place)."""
    _atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def read_cache(path: str | os.PathLike, key: str | None = None) -> dict | None:
    """The cache entry `save_json` wrote to `path` under `key` (any key when None); None when absent, unreadable
    (corrupt, not an object) or another entry's: a cache is autoprec's own derived data, recomputed when unusable."""
    try:
        data = read_json(path)
    except (OSError, ValueError):  # missing, unreadable, not UTF-8 or not JSON
        return None
    return data if isinstance(data, dict) and key in (None, data.get("key")) else None


def nested_numbers(data: object, depth: int) -> bool:
    """True when `data` is `depth` levels of dicts or lists over numbers (the measured values of a cache)."""
    if depth == 0:
        return isinstance(data, int | float) and not isinstance(data, bool)
    values = data.values() if isinstance(data, dict) else data if isinstance(data, list) else None
    return values is not None and all(nested_numbers(value, depth - 1) for value in values)
