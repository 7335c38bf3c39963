"""Task metrics used by the tests: user functions as `--task-metric tests/task_metrics.py:NAME` takes them."""

from __future__ import annotations

import numpy as np


def speech_agreement(floats: list[dict], quantized: list[dict]) -> float:
    """silero-vad's task: the share of frames whose speech / no-speech decision (p > 0.5) matches float."""
    decide = [np.concatenate([s["speech_probs"] for s in outputs]) > 0.5 for outputs in (floats, quantized)]
    return float(np.mean(decide[0] == decide[1]))


def not_finite(floats: list[dict], quantized: list[dict]) -> float:
    return float("nan")
