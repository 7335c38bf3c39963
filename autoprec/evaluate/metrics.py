"""Output-similarity metrics (HMCT names), computed per output and per sample, float vs quantized."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from autoprec.errors import UserError

CHUNK = 1 << 15  # elements per float64 chunk in `Stats.of` (256 kB buffers)


@dataclass(frozen=True)
class Metric:
    """A similarity or distance between a float output and a quantized one, computed from `Stats`."""

    name: str
    higher_is_better: bool
    compute: Callable[[Stats], float]


@dataclass(frozen=True)
class Stats:
    """The sums every metric is made of, computed in one pass over a (float, quantized) output pair."""

    size: int
    dot: float  # sum r*q
    ref_sq: float  # sum r^2
    out_sq: float  # sum q^2
    err_sq: float  # sum (r-q)^2
    err_abs: float  # sum |r-q|
    err_max: float  # max |r-q|
    ref_abs: float  # sum |r|

    @classmethod
    def of(cls, ref: np.ndarray, out: np.ndarray) -> Stats:
        """The sums in float64, a chunk at a time: whole-array float64 temporaries (page faults on every call)
        cost 20-40 ms per layout output on a loaded machine, more than the model run."""
        r, q = np.asarray(ref).ravel(), np.asarray(out).ravel()
        chunk = min(r.size, CHUNK)
        x, y, err = np.empty(chunk), np.empty(chunk), np.empty(chunk)
        dot = ref_sq = out_sq = err_sq = err_abs = ref_abs = 0.0
        maxima = [0.0]
        for start in range(0, r.size, CHUNK):
            n = min(CHUNK, r.size - start)
            a, b, e = x[:n], y[:n], err[:n]
            np.copyto(a, r[start : start + n], casting="unsafe")
            np.copyto(b, q[start : start + n], casting="unsafe")
            np.subtract(a, b, out=e)
            np.abs(e, out=e)
            dot += _dot(a, b)
            ref_sq += _dot(a, a)
            out_sq += _dot(b, b)
            err_sq += _dot(e, e)
            err_abs += float(e.sum())
            maxima.append(float(e.max()))
            ref_abs += float(np.abs(a, out=a).sum())
        return cls(r.size, dot, ref_sq, out_sq, err_sq, err_abs, float(np.max(maxima)), ref_abs)  # NaN stays NaN


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Sum of a*b without BLAS: a threaded BLAS dot on a loaded machine took 30 ms where this takes 0.07 ms."""
    return float(np.einsum("i,i->", a, b))


def _cosine(s: Stats) -> float:
    norm = np.sqrt(s.ref_sq * s.out_sq)
    if norm == 0.0:
        return 1.0 if s.ref_sq == 0.0 and s.out_sq == 0.0 else 0.0
    return float(s.dot / norm)


SQNR_CEILING_DB = 200.0  # an output equal to float's bit for bit: past float32's own rounding noise (~150 dB)


def _sqnr(s: Stats) -> float:
    """Signal to quantization noise in dB, at most SQNR_CEILING_DB: an infinite SQNR of one exact sample would make
    every mean over samples infinite, passing any target."""
    if s.err_sq == 0.0:
        return SQNR_CEILING_DB
    return min(SQNR_CEILING_DB, float(10.0 * np.log10(max(s.ref_sq, 1e-30) / s.err_sq)))


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("cosine-similarity", True, _cosine),
        Metric("mse", False, lambda s: s.err_sq / max(s.size, 1)),
        Metric("mre", False, lambda s: s.err_abs / max(s.ref_abs, 1e-12 * max(s.size, 1))),
        Metric("sqnr", True, _sqnr),
        Metric("chebyshev", False, lambda s: s.err_max),
        Metric("l1", False, lambda s: s.err_abs / max(s.size, 1)),
        Metric("l2", False, lambda s: float(np.sqrt(s.err_sq))),
    )
}
ALIASES = {"cosine": "cosine-similarity", "cos": "cosine-similarity"}


TASK_METRIC = Metric("task", True, lambda s: float("nan"))  # scored by the user's function (autoprec.task)


def get_metric(name: str) -> Metric:
    """Look a metric up by name (or a short alias like `cosine`)."""
    key = ALIASES.get(name, name)
    if key == TASK_METRIC.name:
        return TASK_METRIC
    if key not in METRICS:
        raise UserError(f"unknown metric '{name}'; use one of {', '.join(METRICS)}")
    return METRICS[key]


def compare(ref: np.ndarray, out: np.ndarray) -> dict[str, float]:
    """Every metric for one output of one sample; all NaN if either output holds a NaN or an Inf (a NaN
    score fails every target: see `autoprec.engine.target`)."""
    if not (np.isfinite(ref).all() and np.isfinite(out).all()):
        return dict.fromkeys(METRICS, float("nan"))
    stats = Stats.of(ref, out)
    return {name: metric.compute(stats) for name, metric in METRICS.items()}
