"""Task metrics used by the tests: user functions as `--task-metric tests/task_metrics.py:NAME` takes them."""

from __future__ import annotations

import numpy as np

from autoprec.demo.metrics import label_agreement


def speech_agreement(floats: list[dict], quantized: list[dict]) -> float:
    """silero-vad's task: the share of frames whose speech / no-speech decision (p > 0.5) matches float."""
    decide = [np.concatenate([s["speech_probs"] for s in outputs]) > 0.5 for outputs in (floats, quantized)]
    return float(np.mean(decide[0] == decide[1]))


def not_finite(floats: list[dict], quantized: list[dict]) -> float:
    return float("nan")


def labels_kept_pooled(floats: list[dict], quantized: list[dict]) -> float:
    """magika's share of labels kept, returned as one pooled number instead of one value per file."""
    return float(np.mean(label_agreement(floats, quantized)))


def one_value_too_many(floats: list[dict], quantized: list[dict]) -> np.ndarray:
    return np.ones(len(quantized) + 1)
