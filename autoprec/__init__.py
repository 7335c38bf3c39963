"""autoprec: the smallest int8/int16 mixed-precision config of an ONNX model that meets a target on every output."""

__version__ = "0.1.0"
