"""Output-similarity metrics (HMCT names), computed per output and per sample, float vs quantized."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from autoprec.errors import UserError


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
        r = np.asarray(ref, dtype=np.float64).ravel()
        q = np.asarray(out, dtype=np.float64).ravel()
        err = np.abs(r - q)
        return cls(r.size, float(r @ q), float(r @ r), float(q @ q), float(err @ err), float(err.sum()),
                   float(err.max()) if r.size else 0.0, float(np.abs(r).sum()))  # fmt: skip


def _cosine(s: Stats) -> float:
    norm = np.sqrt(s.ref_sq * s.out_sq)
    if norm == 0.0:
        return 1.0 if s.ref_sq == 0.0 and s.out_sq == 0.0 else 0.0
    return float(s.dot / norm)


def _sqnr(s: Stats) -> float:
    return float("inf") if s.err_sq == 0.0 else float(10.0 * np.log10(max(s.ref_sq, 1e-30) / s.err_sq))


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
