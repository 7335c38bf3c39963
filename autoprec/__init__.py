"""autoprec: the smallest int8/int16 mixed-precision config of an ONNX model that meets a target on every output."""

__version__ = "0.1.0"


def search(*args, **kwargs):  # noqa: ANN002, ANN003 - thin lazy wrapper, documented in autoprec.api.search
    """Search the smallest mixed-precision config; see `autoprec.api.search`."""
    from autoprec.api import search as run

    return run(*args, **kwargs)
