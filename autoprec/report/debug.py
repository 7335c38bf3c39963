"""HMCT's PTQ debug plots as PNG files (`autoprec debug ...`; the report embeds them).

- `plot_distribution`: a tensor's float values with int8 / int16 clipping thresholds and max |x|, and the
  int8 / int16 quantization error (HMCT `plot_distribution`);
- `plot_channels`: per-channel box plots of a tensor, median red, mean blue dashed (HMCT
  `get_channelwise_data_distribution`);
- `plot_error_curve`: cosine of every node's output vs float along the graph, with only weights / only
  activations / everything int8 (HMCT `plot_acc_error`); `plot_ranking_curve`: scores as the most sensitive
  units are raised one by one;
- `runall`: all of them for the top-k sensitive units (HMCT `runall`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from autoprec.engine.sensitivity import load_or_measure
from autoprec.engine.target import Target
from autoprec.engine.units import search_units
from autoprec.errors import UserError
from autoprec.evaluate import Evaluator
from autoprec.hardware import HardwareProfile
from autoprec.ir import FEATURE, CalibrationNode
from autoprec.report.curve import depth_curve, ranking_curve
from autoprec.report.plotting import COLORS, pyplot, save_png
from autoprec.report.tensors import tensor_values

MAX_BOXES = 64  # channels per box plot (the first ones; HMCT draws all, unreadable past ~64)


def calibrations_of(evaluator: Evaluator, name: str) -> list[CalibrationNode]:
    """A calibration node by name, or every calibration input of a normal node (a unit's name is one)."""
    model = evaluator.model
    if name in model.calibration:
        return [model.calibration[name]]
    if name in model.nodes:
        found = model.input_calibrations(name)
        if not found:
            raise UserError(f"node '{name}' has no quantized input; pick one from `autoprec sensitivity`")
        return found
    raise UserError(f"unknown node '{name}': give a node or calibration node name (see `autoprec sensitivity`)")


def tensor_data(evaluator: Evaluator, cal: CalibrationNode, indices: list[int]) -> np.ndarray:
    """The float values a calibration node quantizes: the weight, or the feature on the samples (stacked)."""
    if cal.tensor_type != FEATURE:
        return evaluator.model.weight_values(cal)
    values = tensor_values(evaluator.model, None, [evaluator.sample(i) for i in indices], [cal.tensor])[cal.tensor]
    return np.concatenate([v.astype(np.float32) for v in values], axis=0)


def plot_distribution(evaluator: Evaluator, names: list[str], out_dir: Path, indices: list[int]) -> list[Path]:
    """One PNG per calibration node of `names`: value histogram with thresholds, and quantization error."""
    paths = []
    for cal in [c for n in names for c in calibrations_of(evaluator, n)]:
        data = tensor_data(evaluator, cal, indices)
        plt = pyplot()
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
        flat = data.ravel()
        left.hist(flat, bins=200, color=COLORS[0], log=True, label="float")
        for qtype, color in (("int8", "red"), ("int16", "green")):
            low, high = cal.quant_params(qtype).clip_range()
            left.axvline(float(np.min(low)), color=color, linestyle="--", linewidth=1, label=f"{qtype} clip")
            left.axvline(float(np.max(high)), color=color, linestyle="--", linewidth=1)
            error = (cal.quant_params(qtype).fake_quantize(data) - data).ravel()
            right.hist(error, bins=200, histtype="step", color=color, log=True, label=f"{qtype}: max |err| "
                       f"{np.max(np.abs(error)):.3g}")  # fmt: skip
        low, high = (float(flat.min()), float(flat.max())) if flat.size else (0.0, 0.0)
        left.plot([low, high], [1, 1], "b^", label=f"min / max {low:.4g} / {high:.4g}")
        left.set_title(f"{cal.name} ({cal.tensor_type}): threshold {cal.threshold:.4g}", fontsize=9)
        left.legend(fontsize=7)
        right.set_title("quantization error (quantized - float)", fontsize=9)
        right.legend(fontsize=7)
        paths.append(save_png(fig, Path(out_dir) / f"distribution_{_safe(cal.name)}.png"))
    return paths


def plot_channels(evaluator: Evaluator, name: str, out_dir: Path, indices: list[int]) -> list[Path]:
    """Per-channel box plots of each calibration node of `name` (features: axis 1; weights: their axis)."""
    paths = []
    for cal in calibrations_of(evaluator, name):
        data = tensor_data(evaluator, cal, indices)
        axis = (cal.axis or 0) if cal.tensor_type != FEATURE else (1 if data.ndim > 1 else 0)
        channels = np.moveaxis(data, axis, 0).reshape(data.shape[axis], -1)[:MAX_BOXES]
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(max(6.0, 0.18 * len(channels) + 2), 3.6))
        ax.boxplot(list(channels), showmeans=True, meanline=True, showfliers=False,
                   medianprops={"color": "red"}, meanprops={"color": "blue", "linestyle": "--"})  # fmt: skip
        shown = f" (first {MAX_BOXES} of {data.shape[axis]})" if data.shape[axis] > MAX_BOXES else ""
        ax.set_title(f"{cal.name}: per-channel distribution on axis {axis}{shown}; threshold {cal.threshold:.4g}",
                     fontsize=9)  # fmt: skip
        ax.set_xlabel("channel")
        ax.tick_params(axis="x", labelsize=6)
        paths.append(save_png(fig, Path(out_dir) / f"channels_{_safe(cal.name)}.png"))
    return paths


def error_curve_figure(curve: dict):
    """The `depth_curve` figure: cosine vs float of each node's output, in graph order."""
    fig, ax = pyplot().subplots(figsize=(11, 3.6))
    for (name, values), color in zip(curve["curves"].items(), COLORS):
        ax.plot(values, color=color, linewidth=1.2, label=f"{name} int8")
    ax.set_xlabel(f"node (graph order, {len(curve['nodes'])} nodes)")
    ax.set_ylabel("cosine vs float")
    ax.set_title("Cumulative error along the graph (HMCT plot_acc_error)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def ranking_curve_figure(curve: dict, target: Target):
    """The `ranking_curve` figure: each output's score as the k most sensitive units are raised to int16."""
    fig, ax = pyplot().subplots(figsize=(11, 3.6))
    for (output, values), color in zip(curve["outputs"].items(), COLORS):
        ax.plot(curve["k"], values, marker="o", markersize=3, color=color, label=output)
    for t, color in zip(target.outputs, COLORS):
        ax.axhline(t.threshold, color=color, linestyle="--", linewidth=0.8)
    ax.set_xlabel(f"most sensitive units raised to int16 (of {len(curve['units'])}; rest int8)")
    ax.set_ylabel(target.outputs[0].metric if target.outputs else "score")
    ax.set_title(f"Scores along the sensitivity order ({curve['samples']} samples; dashed: targets)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def plot_error_curve(evaluator: Evaluator, out_dir: Path, indices: list[int]) -> Path:
    """HMCT's plot_acc_error as `error_curve.png`."""
    return save_png(error_curve_figure(depth_curve(evaluator, indices)), Path(out_dir) / "error_curve.png")


def runall(
    evaluator: Evaluator, profile: HardwareProfile, target: Target, out_dir: Path, indices: list[int], top: int = 5
) -> list[Path]:
    """Distribution and channel plots of the calibration nodes of the `top` most sensitive units, the error
    curve along the graph and the sensitivity-order curve (sensitivity cached in `out_dir`'s parent)."""
    sensitivity = load_or_measure(evaluator, profile, Path(out_dir).parent, "node", "single", indices)
    units = {u.name: u for u in search_units(evaluator.model, profile)}
    chosen = [name for name in sensitivity.ranking() if name in units][:top]
    names = [c for name in chosen for c in units[name].calibration]
    paths = plot_distribution(evaluator, names, out_dir, indices)
    for name in names:
        paths += plot_channels(evaluator, name, out_dir, indices)
    paths.append(plot_error_curve(evaluator, out_dir, indices))
    curve = ranking_curve(evaluator, profile, sensitivity, target, indices)
    paths.append(save_png(ranking_curve_figure(curve, target), Path(out_dir) / "ranking_curve.png"))
    return paths


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
