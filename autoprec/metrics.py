"""Output-similarity metrics (HMCT names), computed per output and per sample, float vs quantized."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from autoprec.errors import UserError


@dataclass(frozen=True)
class Metric:
    """A similarity or distance between a float output and a quantized one."""

    name: str
    higher_is_better: bool
    compute: Callable[[np.ndarray, np.ndarray], float]

    def better(self, a: float, b: float) -> bool:
        """True if score `a` is strictly better than `b`."""
        return a > b if self.higher_is_better else a < b

    def meets(self, value: float, threshold: float) -> bool:
        return value >= threshold if self.higher_is_better else value <= threshold


def _cosine(ref: np.ndarray, out: np.ndarray) -> float:
    norm = float(np.linalg.norm(ref) * np.linalg.norm(out))
    if norm == 0.0:
        return 1.0 if not np.any(ref) and not np.any(out) else 0.0
    return float(np.dot(ref, out) / norm)


def _sqnr(ref: np.ndarray, out: np.ndarray) -> float:
    noise = float(np.sum((ref - out) ** 2))
    return float("inf") if noise == 0.0 else float(10.0 * np.log10(max(float(np.sum(ref**2)), 1e-30) / noise))


def _mre(ref: np.ndarray, out: np.ndarray) -> float:
    return float(np.mean(np.abs(ref - out)) / max(float(np.mean(np.abs(ref))), 1e-12))


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("cosine-similarity", True, _cosine),
        Metric("mse", False, lambda r, o: float(np.mean((r - o) ** 2))),
        Metric("mre", False, _mre),
        Metric("sqnr", True, _sqnr),
        Metric("chebyshev", False, lambda r, o: float(np.max(np.abs(r - o))) if r.size else 0.0),
        Metric("l1", False, lambda r, o: float(np.mean(np.abs(r - o)))),
        Metric("l2", False, lambda r, o: float(np.linalg.norm(r - o))),
    )
}
ALIASES = {"cosine": "cosine-similarity", "cos": "cosine-similarity"}


def get_metric(name: str) -> Metric:
    """Look a metric up by name (or a short alias like `cosine`)."""
    key = ALIASES.get(name, name)
    if key not in METRICS:
        raise UserError(f"unknown metric '{name}'; use one of {', '.join(METRICS)}")
    return METRICS[key]


def compare(ref: np.ndarray, out: np.ndarray) -> dict[str, float]:
    """Every metric for one output of one sample."""
    ref64 = np.asarray(ref, dtype=np.float64).ravel()
    out64 = np.asarray(out, dtype=np.float64).ravel()
    return {name: metric.compute(ref64, out64) for name, metric in METRICS.items()}
