"""Task metrics: a user function that scores the quantized model's outputs on the real task.

`--task-metric module:function` (or `path/to/file.py:function`). The function receives the float
outputs and the quantized outputs of every sample (lists of `{output name: array}`) and returns a
number, higher is better (e.g. mAP, accuracy, F1 against the float model's own predictions or
against labels it loads itself), or one value per sample whose mean is the score (a label kept or not).
autoprec scores a candidate as `f(float, quantized) / f(float, float)`: the share of the float model's task
score it keeps, so `--target 0.99` means 99% of float.

The confidence bound, the held-out noise and the sample-count advice need the score's per-sample spread: the
function's own per-sample values, or for one pooled number, its jackknife pseudo-values (`pseudo_values`).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from autoprec.errors import UserError

TASK = "task"  # the pseudo-output and metric name task scores appear under
TASK_SAMPLES = "per_sample"  # beside it: the score's jackknife pseudo-values, one per sample
JACKKNIFE_GROUPS = 128  # beyond this many samples, groups of samples are left out together (one call per group)
Outputs = list[dict[str, np.ndarray]]
TaskFunction = Callable[[Outputs, Outputs], "float | np.ndarray"]


def load_task_metric(spec: str) -> TaskFunction:
    """The function named by `module:function` or `file.py:function`."""
    module_name, sep, function = spec.rpartition(":")
    if not sep or not module_name or not function:
        raise UserError(f"--task-metric '{spec}': write it as module:function or path/to/file.py:function")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            loader_spec = importlib.util.spec_from_file_location(path.stem, path)
            if loader_spec is None or not path.is_file():
                raise ImportError(f"no file {path}")
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # anything the user's code does while importing, SystemExit included
        raise UserError(f"--task-metric: cannot import '{module_name}' ({type(exc).__name__}: {exc})") from exc
    fn = getattr(module, function, None)
    if not callable(fn):
        raise UserError(f"--task-metric: '{module_name}' has no function '{function}'")
    return fn


def relative_score(fn: TaskFunction, floats: Outputs, quantized: Outputs, base: float) -> float | np.ndarray:
    """`fn(floats, quantized) / base`: one number, or one per sample when `fn` returns one value per sample. A
    non-finite float score is the user's error; a candidate whose outputs or score are not finite scores NaN (it
    fails every target, never passes)."""
    if not math.isfinite(base) or base == 0.0:
        raise UserError(f"--task-metric returned {base} on the float model; it must return a finite, non-zero score")
    if not all(np.isfinite(a).all() for sample in quantized for a in sample.values() if a.dtype.kind in "fc"):
        return float("nan")
    try:
        value = np.asarray(fn(floats, quantized), dtype=np.float64)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # the user's function failed, or called sys.exit
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise UserError(f"--task-metric raised {type(exc).__name__}" + (f": {first}" if first else "")) from exc
    if value.ndim == 0:
        return float(value) / base if math.isfinite(value) else float("nan")
    if value.shape != (len(quantized),):
        raise UserError(
            f"--task-metric returned an array of shape {value.shape} for {len(quantized)} samples; return one "
            "number, or one value per sample"
        )
    return value / base if np.isfinite(value).all() else np.full(len(quantized), np.nan)


def pseudo_values(score: Callable[[list[int]], float], n: int, total: float) -> np.ndarray:
    """Per-sample jackknife pseudo-values of a score pooled over `n` samples (`score(positions)` scores a subset,
    `total` is the score of all): `n * total - (n - 1) * score(without sample i)`. For a score that is a mean
    over samples (the share of labels kept) they are exactly its per-sample values; for a pooled one (an IoU of
    all masks) the usual linearization, whose spread gives the score's standard error. Beyond JACKKNIFE_GROUPS
    samples, groups of m are left out together (pseudo-value `n/m * total - (n/m - 1) * score(without them)`, the
    group's mean for a mean) and each sample gets its group's, scaled about `total` by sqrt(m) so that the spread
    still gives that standard error. Rounded to 1e-12, so that a share's pseudo-values are exactly its 0s and 1s."""
    if n < 2 or not math.isfinite(total):
        return np.full(max(n, 1), total, dtype=np.float64)
    groups = np.array_split(np.arange(n), min(n, JACKKNIFE_GROUPS))
    values = np.empty(n, dtype=np.float64)
    for group in groups:
        rest = np.setdiff1d(np.arange(n), group).tolist()
        weight = n / len(group)  # the delete-m jackknife's h = n / m: a group's mean for a mean over samples
        pseudo = weight * total - (weight - 1) * score(rest)
        values[group] = total + math.sqrt(len(group)) * (pseudo - total)
    return np.round(values, 12)
