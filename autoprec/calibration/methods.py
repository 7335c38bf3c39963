"""Activation ranges of every calibration method, from one onnxruntime pass over the samples.

onnxruntime's augmented model (every calibrated tensor as an extra output) gives each tensor's min
and max (max), then |x| histograms (symmetric percentile, mse) and signed histograms (kl, asymmetric
percentile) over those ranges: onnxruntime's histogram collectors' data, from which its percentile
code (and an equivalent of its entropy code) computes the thresholds. A range is named by a label:
"max", "percentile-99.999", "kl", "mse".
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization.calibrate import CalibrationMethod, HistogramCollector, create_calibrator

from autoprec.data import Sample
from autoprec.hardware import CALIBRATION_METHODS as METHODS

__all__ = ["ABSURD_RANGE", "METHODS", "PERCENTILES", "SCHEMES", "Collection", "collect", "label", "parse_label"]
PERCENTILES = (99.99, 99.999, 99.9999)  # the percentiles `auto` tries
SCHEMES = {"symmetric": False, "asymmetric": True}  # scheme -> asymmetric
ABSURD_RANGE = 1e6  # activations beyond this (masks of +-3.4e38...) stay float
NUM_BINS, NUM_QUANTIZED_BINS = 2048, 128  # onnxruntime's KL defaults (128 bins) leave a single candidate: the max
KL_STRIDE = 16  # KL: every 16th candidate threshold, then every one around the best
Range = tuple[float, float]


def label(method: str, percentile: float | None = None) -> str:
    """The range label of a method: "percentile-99.999" for percentile, the method name otherwise."""
    return f"percentile-{percentile:g}" if method == "percentile" else method


def parse_label(text: str) -> tuple[str, float | None]:
    """("percentile", 99.999) for "percentile-99.999"; (method, None) otherwise."""
    method, _, value = text.partition("-")
    return method, float(value) if value else None


@dataclass
class Collection:
    """Per tensor: its min and max, and (for quantizable tensors) |x| histograms (hist, edges, min, max) and
    signed ones (hist, edges, min, max, threshold), as onnxruntime's HistogramCollector keeps them."""

    minmax: dict[str, Range]
    absolute: HistogramCollector
    signed: HistogramCollector
    _kl: dict[str, Range] | None = None

    def ranges(self, name: str, asymmetric: bool) -> dict[str, Range]:
        """tensor -> (rmin, rmax) of the method labelled `name` under a scheme (a tensor without histograms:
        non-finite, beyond ABSURD_RANGE or too narrow for 2048 float32 bins, keeps its max range)."""
        method, percentile = parse_label(name)
        maximum = dict(self.minmax) if asymmetric else {t: _symmetric(lo, hi) for t, (lo, hi) in self.minmax.items()}
        if method == "max":
            return maximum
        if method == "mse":
            return maximum | {t: _mse_range(*h) for t, h in self.absolute.histogram_dict.items()}
        if method == "kl":  # the same for both schemes: computed once
            if self._kl is None:
                self._kl = {t: _kl_range(*h[:4]) for t, h in self.signed.histogram_dict.items()}
            return maximum | self._kl
        collector = self.signed if asymmetric else self.absolute
        collector.symmetric, collector.percentile = not asymmetric, percentile
        with contextlib.redirect_stdout(io.StringIO()):  # onnxruntime prints its progress to stdout
            result = collector.compute_percentile()
        return maximum | {t: (float(v[0]), float(v[1])) for t, v in result.items()}

    def unsigned_ranges(self, name: str) -> dict[str, Range]:
        """tensor -> (rmin, rmax) of the method labelled `name` for a never-negative tensor quantized over [0, T]
        with 255 steps (autoprec.calibration.unsigned): the symmetric scheme's threshold T (|x| is x there: a
        percentile cuts the upper tail), mse's fitted to 255 steps instead of 127."""
        ranges = self.ranges(name, asymmetric=False)
        if name == "mse":
            ranges |= {t: _mse_range(*h, levels=255) for t, h in self.absolute.histogram_dict.items()}
        return ranges


def collect(model: onnx.ModelProto, samples: list[Sample], op_types: list[str], histograms: bool = True) -> Collection:
    """Every float input/output of `op_types`, as extra outputs of onnxruntime's augmented model, in two passes
    over the samples (min/max, then histograms over those ranges): the histograms onnxruntime's collectors
    build from all samples at once, with one sample's activations in memory at a time. Without `histograms`
    (max calibration needs none) only the first pass runs."""
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        path = Path(tmp) / "model.onnx"
        onnx.save(model, str(path))
        calibrator = create_calibrator(
            path, op_types_to_calibrate=op_types, augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=CalibrationMethod.Entropy,
        )  # fmt: skip
        session, wanted = calibrator.infer_session, set(calibrator.tensors_to_calibrate)
        names = [o.name for o in session.get_outputs()]

        def activations():
            for sample in samples:
                yield from ((n, v) for n, v in zip(names, session.run(None, sample)) if n in wanted)

        bounds: dict[str, list[float]] = {}  # min, max, min |x|, max |x|
        for name, value in activations():
            found = [np.nanmin(value), np.nanmax(value), np.nanmin(np.abs(value)), np.nanmax(np.abs(value))]
            old = bounds.setdefault(name, found)
            bounds[name] = [min(old[0], found[0]), max(old[1], found[1]), min(old[2], found[2]), max(old[3], found[3])]
        edges = {
            n: (_edges(b[2], b[3]), _edges(-b[3], b[3]))
            for n, b in bounds.items() if np.all(np.isfinite(b)) and b[3] <= ABSURD_RANGE
        }  # fmt: skip
        usable = {n for n, (a, s) in edges.items() if a is not None and s is not None} if histograms else set()
        absolute = {n: np.zeros(NUM_BINS, np.int64) for n in usable}
        signed = {n: np.zeros(NUM_BINS, np.int64) for n in usable}
        for name, value in activations() if usable else ():
            if name in usable:
                low, high, abs_low, abs_high = bounds[name]
                absolute[name] += _histogram(np.abs(value), abs_low, abs_high)
                signed[name] += _histogram(value, -abs_high, abs_high)
    minmax = {n: (float(b[0]), float(b[1])) for n, b in bounds.items()}
    abs_collector = HistogramCollector("percentile", True, NUM_BINS, NUM_QUANTIZED_BINS, 99.999, "same")
    signed_collector = HistogramCollector("entropy", False, NUM_BINS, NUM_QUANTIZED_BINS, 99.999, "same")
    for name in usable:
        low, high, _, abs_high = bounds[name]
        abs_collector.histogram_dict[name] = (absolute[name], edges[name][0], low, high)
        signed_collector.histogram_dict[name] = (signed[name], edges[name][1], low, high, abs_high)
    return Collection(minmax, abs_collector, signed_collector)


def _histogram(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """NUM_BINS equal bins over [low, high] (which hold every finite value), as np.histogram counts them up to
    float rounding at bin edges, ~3x faster (half of layout's auto calibration was np.histogram)."""
    values = values.ravel()
    if low == high:  # np.histogram's rule for an empty range
        low, high = low - 0.5, high + 0.5
    if not np.isfinite(values.sum(dtype=np.float64)):
        values = values[np.isfinite(values)]
    index = ((values - np.float32(low)) * np.float32(NUM_BINS / (high - low))).astype(np.intp)
    return np.bincount(np.clip(index, 0, NUM_BINS - 1, out=index), minlength=NUM_BINS)


def _edges(low: np.float32, high: np.float32) -> np.ndarray | None:
    """The float32 edges np.histogram uses for NUM_BINS bins over [low, high]; None if float32 cannot
    resolve that many bins there."""
    try:
        return np.histogram_bin_edges(np.zeros(0, np.float32), NUM_BINS, range=(low, high)).astype(np.float32)
    except ValueError:
        return None


def _symmetric(low: float, high: float) -> Range:
    bound = max(abs(low), abs(high))
    return -bound, bound


def _kl_range(hist: np.ndarray, edges: np.ndarray, low: float, high: float) -> Range:
    """onnxruntime's entropy (KL) threshold of a signed histogram (`HistogramCollector.get_entropy_threshold`:
    the same candidate thresholds, merged bins, smoothing and divergence) in numpy, one row per candidate,
    instead of onnxruntime's Python loops (~1 s per tensor at 2048 bins): every KL_STRIDE-th candidate, then
    every candidate around the best of those."""
    zero = hist.size // 2
    coarse = np.arange(NUM_QUANTIZED_BINS // 2, zero + 1, KL_STRIDE)
    best = coarse[int(np.argmin(_kl_divergences(hist, coarse)))]
    fine = np.arange(max(NUM_QUANTIZED_BINS // 2, best - KL_STRIDE + 1), min(zero, best + KL_STRIDE - 1) + 1)
    half = fine[int(np.argmin(_kl_divergences(hist, fine)))]
    start, end = zero - half, min(zero + half + 1, hist.size)
    return max(float(edges[start]), float(low)), min(float(edges[end]), float(high))


def _kl_divergences(hist: np.ndarray, half: np.ndarray) -> np.ndarray:
    """KL divergence of each candidate threshold (histogram bins zero-half .. zero+half), as onnxruntime."""
    num_bins, bins = hist.size, NUM_QUANTIZED_BINS
    zero = num_bins // 2
    start, end = zero - half, np.minimum(zero + half + 1, num_bins)
    length, rows = end - start, np.arange(half.size)
    k = np.arange(length.max())[None, :]
    valid = k < length[:, None]
    sliced = np.where(valid, hist[np.minimum(start[:, None] + k, num_bins - 1)], 0).astype(np.float64)
    total = np.concatenate([[0], np.cumsum(hist)])
    p = sliced.copy()  # the reference distribution: the outliers folded into its end bins
    p[rows, 0] += total[start]
    p[rows, length - 1] += total[-1] - total[end]
    merged = (length // bins)[:, None]
    j = np.arange(bins)[None, :]
    last = np.where(j == bins - 1, length[:, None], (j + 1) * merged)  # the last merged bin takes the remainder
    sums = _prefix(sliced)
    quantized = np.take_along_axis(sums, last, 1) - np.take_along_axis(sums, j * merged, 1)
    nonzero = _prefix((p != 0) & valid)
    norm = np.take_along_axis(nonzero, (j + 1) * merged, 1) - np.take_along_axis(nonzero, j * merged, 1)
    expanded = np.where(norm > 0, np.floor(quantized / np.maximum(norm, 1)), 0)
    q = np.where(k < bins * merged, np.take_along_axis(expanded, np.minimum(k // merged, bins - 1), 1), 0)
    (p, p_ok), (q, q_ok) = _smooth(p, valid), _smooth(q, valid)
    p, q = p / p.sum(axis=1, keepdims=True), q / q.sum(axis=1, keepdims=True)
    terms = np.where(valid, p * np.log(np.where(valid, p, 1) / np.where(valid, q, 1)), 0)
    return np.where(p_ok & q_ok, terms.sum(axis=1), np.inf)


def _prefix(rows: np.ndarray) -> np.ndarray:
    """Row-wise cumulative sums with a leading 0 column."""
    return np.concatenate([np.zeros((rows.shape[0], 1)), np.cumsum(rows, axis=1)], axis=1)


def _smooth(x: np.ndarray, valid: np.ndarray, eps: float = 0.0001) -> tuple[np.ndarray, np.ndarray]:
    """onnxruntime's `smooth_distribution` per row (zeros -> eps, taken off the non-zeros); and which rows
    have any non-zero (the others have no distribution)."""
    zeros, nonzeros = (x == 0) & valid, (x != 0) & valid
    count = nonzeros.sum(axis=1, keepdims=True)
    eps1 = eps * zeros.sum(axis=1, keepdims=True) / np.maximum(count, 1)
    return np.where(valid, x + eps * zeros - eps1 * nonzeros, 0), count[:, 0] > 0


def _mse_range(hist: np.ndarray, edges: np.ndarray, low: float, high: float, levels: int = 127) -> Range:
    """The clipping threshold T (a bin edge of the |x| histogram) that minimizes the expected int8 error:
    rounding noise (T/levels)^2/12 for values inside (127: signed, 255: unsigned), squared clipping distance
    for values beyond."""
    counts = hist.astype(np.float64)
    centers = (edges[:-1].astype(np.float64) + edges[1:]) / 2
    candidates = edges[1:].astype(np.float64)
    # values beyond each candidate: suffix sums of n, n*c, n*c^2 over the bins past it
    tail_n = np.cumsum(counts[::-1])[::-1]
    tail_c = np.cumsum((counts * centers)[::-1])[::-1]
    tail_c2 = np.cumsum((counts * centers**2)[::-1])[::-1]
    beyond = np.append(tail_n[1:], 0.0), np.append(tail_c[1:], 0.0), np.append(tail_c2[1:], 0.0)
    clipping = beyond[2] - 2 * candidates * beyond[1] + candidates**2 * beyond[0]
    rounding = (counts.sum() - beyond[0]) * (candidates / levels) ** 2 / 12
    threshold = float(candidates[np.argmin(clipping + rounding)])
    return max(float(low), -threshold), min(float(high), threshold)
