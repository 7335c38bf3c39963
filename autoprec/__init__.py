"""autoprec: the smallest int8/int16 mixed-precision config of an ONNX model that meets a target on every output."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autoprec.api import SearchSettings, search

__all__ = ["SearchSettings", "search"]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """`search` and `SearchSettings`, imported on first use: the command line starts without the heavy imports
    (onnx, onnxruntime, optuna), so that it handles a Ctrl-C during them."""
    if name in __all__:
        from autoprec import api

        return getattr(api, name)
    raise AttributeError(f"module 'autoprec' has no attribute '{name}'")
