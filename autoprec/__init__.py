"""autoprec: the smallest int8/int16 mixed-precision config of an ONNX model that meets a target on every output."""

from autoprec.api import SearchSettings, search

__all__ = ["SearchSettings", "search"]
__version__ = "0.1.0"
