"""Loading ONNX models safely, with one-line errors for every way a user's file can be wrong."""

from __future__ import annotations

import json
import os
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
    _check_external_data(model, path.parent.resolve())
    try:
        onnx.load_external_data_for_model(model, str(path.parent))
    except (OSError, ValueError) as exc:
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def save_model(model: onnx.ModelProto, path: str | os.PathLike) -> None:
    """Write a model atomically (a temp file renamed into place)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, path)


def save_json(data: object, path: str | os.PathLike) -> None:
    """Write JSON atomically (a temp file renamed into place)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)
